// A batch input of chat lines for the end-to-end tests: `n` OpenAI Batch lines with custom_ids
// `<tag>-<i>` and a distinct prompt each, as JSONL text with its final newline.

export type ChatLinesOptions = {
  /** custom_id prefix. @default "q" */
  tag?: string;
  /** Each line's max_tokens. @default 16 */
  maxTokens?: number;
  /** Line i's prompt. @default `question <tag> <i>` */
  content?: (i: number, tag: string) => string;
};

export function chatLines(n: number, options: ChatLinesOptions = {}): string {
  const { tag = "q", maxTokens = 16, content = (i, t) => `question ${t} ${i}` } = options;
  const lines = Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      custom_id: `${tag}-${i}`,
      method: "POST",
      url: "/v1/chat/completions",
      body: {
        model: "gpt-4o-mini",
        max_tokens: maxTokens,
        messages: [{ role: "user", content: content(i, tag) }],
      },
    }),
  );
  return `${lines.join("\n")}\n`;
}
