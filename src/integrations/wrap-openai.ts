// A drop-in for existing code: `wrapOpenAI(client, salvo)` returns the same client, typed the
// same, whose `chat.completions.create` goes through Salvo's scheduler — admission, rate limits,
// one retry authority, honest timeouts — so code like the seeds' changes in one line.
//
// Streaming (`stream: true`) is admitted like any call, and its slot is held until the stream has
// been read to the end, abandoned, or aborted. What `create` returns is a plain Promise:
// `.withResponse()` / `.asResponse()` of the SDK's APIPromise are not available on it.
import type OpenAI from "openai";
import type { Scheduler } from "./core/scheduler.ts";
import { OpenAIProvider } from "./providers/openai-provider.ts";
import { errorFromSdk } from "./providers/sdk-errors.ts";
import { costOf, Salvo } from "./salvo.ts";

type CreateOptions = { signal?: AbortSignal | null | undefined; timeout?: number | undefined };

/** A Stream whose end releases the slot that admitted it. */
function releasingStream<S extends AsyncIterable<unknown>>(stream: S, release: () => void): S {
  const iterate = stream[Symbol.asyncIterator].bind(stream);
  (stream as { [Symbol.asyncIterator]: () => AsyncIterator<unknown> })[Symbol.asyncIterator] =
    async function* () {
      try {
        yield* { [Symbol.asyncIterator]: iterate };
      } finally {
        release();
      }
    };
  return stream;
}

/**
 * Returns `client` with `chat.completions.create` routed through `salvo` (a Salvo, or a shared
 * Scheduler). The client's own retries are turned off for these calls; Salvo retries instead.
 */
export function wrapOpenAI<C extends OpenAI>(client: C, salvo: Salvo | Scheduler): C {
  const scheduler = salvo instanceof Salvo ? salvo.scheduler : salvo;
  const provider = new OpenAIProvider({ client });
  const calls = new Salvo({ provider, scheduler });
  const raw = client.withOptions({ maxRetries: 0 });

  const create = (body: Record<string, unknown>, options: CreateOptions = {}): Promise<unknown> => {
    const request = { path: "/chat/completions", body };
    const runOptions = {
      signal: options.signal ?? undefined,
      timeoutMs: options.timeout,
    };
    if (body.stream !== true) {
      return calls.call(request, runOptions).then((result) => result.body);
    }
    return new Promise((resolve, reject) => {
      scheduler
        .run(
          async (context) => {
            let stream: AsyncIterable<unknown>;
            try {
              stream = (await raw.chat.completions.create(
                body as unknown as OpenAI.ChatCompletionCreateParamsStreaming,
                { signal: context.signal },
              )) as AsyncIterable<unknown>;
            } catch (error) {
              throw errorFromSdk(error, provider.name, context.signal);
            }
            // Hold the slot until the caller has read the stream, or the attempt is aborted.
            await new Promise<void>((release) => {
              context.signal.addEventListener("abort", () => release(), { once: true });
              resolve(releasingStream(stream, release));
            });
          },
          { ...runOptions, cost: costOf(provider.estimate(request)) },
        )
        .catch(reject);
    });
  };

  const completions = new Proxy(client.chat.completions, {
    get(target, property, receiver) {
      if (property === "create") return create;
      return Reflect.get(target, property, receiver);
    },
  });
  const chat = new Proxy(client.chat, {
    get(target, property, receiver) {
      if (property === "completions") return completions;
      return Reflect.get(target, property, receiver);
    },
  });
  return new Proxy(client, {
    get(target, property, receiver) {
      if (property === "chat") return chat;
      return Reflect.get(target, property, receiver);
    },
  });
}
