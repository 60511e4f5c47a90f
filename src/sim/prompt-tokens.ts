// Prompt token counts as a client estimates them, so the simulator's TPM charges match what a
// client reserves: the o200k_base encoding (counted in linear time, as the client counts) with the
// OpenAI cookbook's chat overhead.

import { countTokens } from "../tokens/o200k.ts";
import { contentText, type SimContentPart, type SimMessage } from "./marker.ts";

/** Tokens added per message (3 for the message framing, 1 for the role). */
export const TOKENS_PER_MESSAGE = 4;
/** Tokens that prime the assistant's reply. */
export const TOKENS_PER_REPLY = 3;

/**
 * `3 + sum over messages of (4 + countTokens(text))`, where `text` is the message content (text
 * parts joined) and Anthropic's `system` counts as one more message.
 */
export function countPromptTokens(
  messages: readonly SimMessage[],
  system?: string | readonly SimContentPart[],
): number {
  let total = TOKENS_PER_REPLY;
  if (system !== undefined) {
    const text = contentText(system);
    if (text !== "") total += TOKENS_PER_MESSAGE + countTokens(text);
  }
  for (const message of messages) {
    const text = contentText(message.content);
    total += TOKENS_PER_MESSAGE + (text === "" ? 0 : countTokens(text));
  }
  return total;
}
