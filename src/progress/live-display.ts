// The one owner of a terminal's live lines: several lines redrawn together in one write (so they
// never tear or fight), messages printed above them, and the last state left on screen at the
// end. Plain ANSI: cursor up (CSI n A), carriage return, erase to the end of the screen (CSI J).
import { cut } from "./fit-line.ts";
import type { ProgressOutput } from "./progress-renderer.ts";

const ESC = "\u001b[";

/** The width lines are fitted to when a terminal does not say. */
export const DEFAULT_COLUMNS = 80;

export class LiveDisplay {
  readonly #output: ProgressOutput;
  /** Lines on screen now; the cursor is at the start of the line below them. */
  #height = 0;
  #closed = false;

  constructor(output: ProgressOutput) {
    this.#output = output;
  }

  /**
   * The usable width: one column less than the terminal's, so that a full line never makes the
   * terminal wrap (which would put the cursor one line lower than counted).
   */
  get width(): number {
    const columns = this.#output.columns;
    return Math.max(20, (columns !== undefined && columns > 0 ? columns : DEFAULT_COLUMNS) - 1);
  }

  /** Replaces the live lines with `lines` (each cut to the width), in one write. */
  draw(lines: readonly string[]): void {
    if (this.#closed) return;
    const width = this.width;
    this.#output.write(this.#erase() + lines.map((line) => `${cut(line, width)}\n`).join(""));
    this.#height = lines.length;
  }

  /**
   * Prints `text` above the live lines (which are drawn again below it by the next `draw`, or
   * `lines` at once).
   */
  print(text: string, lines?: readonly string[]): void {
    if (this.#closed) {
      this.#output.write(text);
      return;
    }
    const body = text.endsWith("\n") || text === "" ? text : `${text}\n`;
    this.#output.write(this.#erase() + body);
    this.#height = 0;
    if (lines !== undefined) this.draw(lines);
  }

  /** Draws `lines` a last time and lets go: nothing is redrawn after this; the lines stay. */
  close(lines?: readonly string[]): void {
    if (this.#closed) return;
    if (lines !== undefined) this.draw(lines);
    this.#closed = true;
  }

  #erase(): string {
    if (this.#height === 0) return "";
    return `\r${ESC}${this.#height}A${ESC}J`;
  }
}
