// Splits a server-sent-events byte stream into whole events, so the gateway can pass each event
// on as it arrived and still read the ones it needs (usage, the end of the stream, errors).
// An event is the text between blank lines; `event:` and `data:` are its fields (WHATWG HTML
// §9.2.6, the format both OpenAI and Anthropic stream in).

/** One event: its raw text (no trailing blank line), its `event:` name and its joined `data:`. */
export type SseEvent = { raw: string; event: string | undefined; data: string };

const BOUNDARY = /\r\n\r\n|\n\n|\r\r/;

export class SseSplitter {
  readonly #decoder = new TextDecoder();
  #buffer = "";

  /** Feeds bytes; returns the events they complete, in order. */
  push(chunk: Uint8Array): SseEvent[] {
    this.#buffer += this.#decoder.decode(chunk, { stream: true });
    return this.#drain();
  }

  /** The end of the stream: a last event without its blank line still counts; returns it. */
  end(): SseEvent[] {
    this.#buffer += this.#decoder.decode();
    const events = this.#drain();
    const rest = this.#buffer;
    this.#buffer = "";
    if (rest.trim() !== "") events.push(parseEvent(rest));
    return events;
  }

  #drain(): SseEvent[] {
    const events: SseEvent[] = [];
    for (;;) {
      const match = BOUNDARY.exec(this.#buffer);
      if (match === null) return events;
      const raw = this.#buffer.slice(0, match.index);
      this.#buffer = this.#buffer.slice(match.index + match[0].length);
      if (raw.trim() !== "") events.push(parseEvent(raw));
    }
  }
}

/** The fields of one event's text. Comment lines (`:`) and unknown fields are kept in `raw` only. */
export function parseEvent(raw: string): SseEvent {
  let event: string | undefined;
  const data: string[] = [];
  for (const line of raw.split(/\r\n|\n|\r/)) {
    const colon = line.indexOf(":");
    if (colon === 0) continue;
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  return { raw, event, data: data.join("\n") };
}
