// The answer's content is a function of the prompt, so a test can check that every answer reached
// the item that asked for it: it starts with a marker derived from a hash of the messages.

import { createHash } from "node:crypto";

/** A content part as both providers send them; only `text` parts count. */
export type SimContentPart = { type: string; text?: string };

/** A chat message in either provider's shape. */
export type SimMessage = {
  role: string;
  content?: string | readonly SimContentPart[] | null;
};

/** The text of a message's content: a string, or the `text` parts joined without separator. */
export function contentText(content: SimMessage["content"]): string {
  if (typeof content === "string") return content;
  if (!content) return "";
  let text = "";
  for (const part of content)
    if (part.type === "text" && typeof part.text === "string") text += part.text;
  return text;
}

export type MarkerOptions = {
  /** Anthropic's top-level `system` prompt; counts as a leading `system` message. */
  system?: string | readonly SimContentPart[] | undefined;
};

/**
 * The marker every answer to these messages starts with: `sim-` and 12 hex digits of the SHA-256
 * of the roles and texts. An OpenAI request with a leading system message and an Anthropic request
 * with the same `system` prompt get the same marker. Independent of the model and the seed.
 */
export function expectedMarker(
  messages: readonly SimMessage[],
  options: MarkerOptions = {},
): string {
  const hash = createHash("sha256");
  if (options.system !== undefined) {
    const system = contentText(options.system);
    if (system !== "") hash.update(`system\u0000${system}\u0001`);
  }
  for (const message of messages)
    hash.update(`${message.role}\u0000${contentText(message.content)}\u0001`);
  return `sim-${hash.digest("hex").slice(0, 12)}`;
}

/** The marker's hash as a 32-bit integer, a per-prompt key for seeded choices. */
export function markerKey(marker: string): number {
  return Number.parseInt(marker.slice(4, 12), 16);
}

const FILLER = " lima echo golf kilo mike papa xray zulu";
const WORD = 5; // every filler word is 5 characters, its leading space included

/** The first `chars` characters of the last user message, on one line. */
export function echoOf(messages: readonly SimMessage[], chars: number): string {
  if (chars <= 0) return "";
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i]!;
    if (message.role === "user")
      return contentText(message.content).slice(0, chars).replace(/\s+/g, " ");
  }
  return "";
}

/**
 * The answer, as `tokens` pieces: the first is the marker (then a space and the echo, when there
 * is one), each following piece one filler word. Streaming sends one piece per chunk.
 */
export function answerPiece(head: string, index: number): string {
  if (index === 0) return head;
  const at = ((index - 1) % 8) * WORD;
  return FILLER.slice(at, at + WORD);
}

/** The whole answer text of `tokens` pieces (the pieces of `answerPiece` joined). */
export function answerText(head: string, tokens: number): string {
  const words = Math.max(0, tokens - 1);
  const filler = FILLER.repeat(Math.floor(words / 8)) + FILLER.slice(0, (words % 8) * WORD);
  return head + filler;
}

/** The first piece: the marker, then the echo when there is one. */
export function answerHead(marker: string, echo: string): string {
  return echo === "" ? marker : `${marker} ${echo}`;
}
