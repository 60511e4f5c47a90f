// Token counts with the o200k encoding (the GPT-4o family's) in time linear in the text:
// gpt-tokenizer's byte-pair merge is quadratic in the length of one pre-tokenized piece (a run of
// one character is one piece: 80k `A`s took 2 s, 300 KB about 30 s), so pieces longer than
// MAX_PIECE_CHARS are counted in slices. Shared by the providers' estimates and the simulator's
// charges, so both count alike and neither can be frozen by a pathological prompt.
import { countTokens as o200kCount } from "gpt-tokenizer/encoding/o200k_base";
import { O200K_TOKEN_SPLIT_REGEX } from "gpt-tokenizer/encodingParams/constants";

/**
 * The longest piece handed to the tokenizer whole, in UTF-16 code units. Natural text's pieces
 * (words, numbers, punctuation runs) are far shorter; a longer one (a run of one character, a
 * wall of `/\n`) is sliced, which changes its count by at most one token per slice (each slice of
 * a run is itself many tokens: 256 `A`s are 32).
 */
export const MAX_PIECE_CHARS = 256;

/** Special tokens (`<|endoftext|>`) in a prompt are plain text to the API: count them as text. */
const AS_PLAIN_TEXT = { disallowedSpecial: new Set<string>() };

export const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff;

/** `end`, moved back by one if it would split a surrogate pair. */
export function safeEnd(text: string, end: number): number {
  return end < text.length && end > 0 && isHighSurrogate(text.charCodeAt(end - 1)) ? end - 1 : end;
}

/**
 * Counts `text` through `count` (the tokenizer), never handing it a pre-tokenized piece longer
 * than MAX_PIECE_CHARS: the runs between long pieces are passed whole (their pieces are the
 * tokenizer's own), each long piece in slices. Linear in the text's length. Exported for tests.
 */
export function countSliced(text: string, count: (text: string) => number): number {
  if (text.length <= MAX_PIECE_CHARS) return text === "" ? 0 : count(text);
  let tokens = 0;
  let from = 0; // start of the text not yet counted
  for (const match of text.matchAll(O200K_TOKEN_SPLIT_REGEX)) {
    const piece = match[0];
    if (piece.length <= MAX_PIECE_CHARS) continue;
    const start = match.index;
    if (start > from) tokens += count(text.slice(from, start));
    const end = start + piece.length;
    for (let at = start; at < end; ) {
      const next = Math.max(at + 1, safeEnd(text, Math.min(end, at + MAX_PIECE_CHARS)));
      tokens += count(text.slice(at, next));
      at = next;
    }
    from = end;
  }
  if (from < text.length) tokens += count(text.slice(from));
  return tokens;
}

const tokenizer = (text: string) => o200kCount(text, AS_PLAIN_TEXT);

/** Counts the tokens of a text with the o200k encoding, in time linear in its length. */
export function countTokens(text: string): number {
  return countSliced(text, tokenizer);
}
