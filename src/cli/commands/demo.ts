// `salvo demo` (`npm start`): an interim offline demo until the batch runner exists. Starts the
// simulator in-process with scenarios/demo.yaml, asks it a few questions through the official
// OpenAI SDK (a fake key, loopback only), and prints the answers and the simulator's stats.

import type { Command } from "commander";
import OpenAI from "openai";
import { expectedMarker, loadScenario, startSimulator } from "../../sim/index.ts";
import { cliCommand } from "../cli-command.ts";
import type { CliIo } from "../io.ts";
import { SCENARIO_DIR, statsSummary } from "./sim.ts";

const QUESTIONS = [
  "Summarise claim 1041 in one sentence.",
  "List the speakers in transcript 7.",
  "Rate the code quality of module billing/invoice.ts.",
  "Extract the totals from page 3 of the PDF.",
];

export function demoCommand(io: CliIo): Command {
  return cliCommand("demo", io)
    .description(
      "run an offline demo against the built-in simulated provider (no network, no API key)",
    )
    .action(async () => {
      const sim = await startSimulator(await loadScenario(`${SCENARIO_DIR}demo.yaml`));
      try {
        io.stdout.write(`simulated provider at ${sim.baseUrl} (scenarios/demo.yaml)\n\n`);
        const client = new OpenAI({
          baseURL: sim.baseUrl,
          apiKey: "sk-test-not-a-real-key",
          maxRetries: 0,
        });
        // Sent at once: the scenario's 120 RPM is a bucket of 2, so some get a 429 and wait for
        // the simulator's retry-after-ms; an injected 5xx is retried after a short pause.
        const results = await Promise.all(QUESTIONS.map((q) => ask(client, q, io.signal)));
        results.forEach(({ question, answer, attempts }) => {
          io.stdout.write(`> ${question}\n`);
          for (const failure of attempts) io.stdout.write(`  (attempt failed: ${failure})\n`);
          if (answer === undefined) return;
          const text = answer.choices[0]?.message.content ?? "";
          const ok = text.startsWith(expectedMarker([{ role: "user", content: question }]));
          io.stdout.write(
            `  ${text}\n  (${answer.usage?.prompt_tokens} prompt + ${answer.usage?.completion_tokens} output tokens; marker ${ok ? "matches" : "DOES NOT MATCH"})\n`,
          );
        });
        io.stdout.write(`\nsimulator: ${statsSummary(sim.stats({ timeline: false }))}\n`);
      } finally {
        await sim.close();
      }
    });
}

type Asked = { question: string; answer: OpenAI.ChatCompletion | undefined; attempts: string[] };

async function ask(client: OpenAI, question: string, signal: AbortSignal): Promise<Asked> {
  const attempts: string[] = [];
  for (let attempt = 1; attempt <= 6; attempt++) {
    try {
      const answer = await client.chat.completions.create(
        { model: "sim-gpt", messages: [{ role: "user", content: question }], max_tokens: 64 },
        { signal },
      );
      return { question, answer, attempts };
    } catch (error) {
      if (!(error instanceof OpenAI.APIError) || signal.aborted) throw error;
      attempts.push(`${error.constructor.name} ${error.status ?? ""}`.trim());
      const hinted = Number(error.headers?.get("retry-after-ms"));
      // Independent clients retrying at the same hint collide again on the shared bucket: the
      // problem Salvo's scheduler exists to solve. A little jitter keeps this demo short.
      const wait = Number.isFinite(hinted) && hinted > 0 ? hinted : 200;
      await sleep(wait + Math.random() * 250, signal);
    }
  }
  return { question, answer: undefined, attempts };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}
