// A terminal for progress tests: a write sink with a column count that keeps a screen the way a
// VT100-style terminal would for the sequences Salvo draws with (carriage return, newline, cursor
// up CSI n A, erase CSI J / CSI K), wrapping at the last column. Any other escape sequence is
// recorded in `unknown`, so a test can check that nothing else reached the terminal.

const ESC = String.fromCharCode(27);
/** A CSI sequence at the start of a string: ESC [ digits letter. */
const CSI = new RegExp(`^${ESC}\\[(\\d*)([A-Za-z])`);
const ANY_CSI = new RegExp(`${ESC}\\[\\d*[A-Za-z]`, "g");

export class FakeTerminal {
  readonly isTTY = true;
  columns: number;
  /** Every chunk written, in order. */
  readonly writes: string[] = [];
  /** Escape sequences this terminal does not know (should stay empty). */
  readonly unknown: string[] = [];
  #rows: string[][] = [[]];
  #row = 0;
  #col = 0;

  constructor(columns: number) {
    this.columns = columns;
  }

  write(text: string): boolean {
    this.writes.push(text);
    let i = 0;
    while (i < text.length) {
      const ch = text[i]!;
      if (ch === ESC) {
        const match = CSI.exec(text.slice(i));
        if (match === null) {
          this.unknown.push(text.slice(i, i + 8));
          i++;
          continue;
        }
        this.#csi(match[2]!, match[1] === "" ? undefined : Number(match[1]), match[0]);
        i += match[0].length;
        continue;
      }
      i++;
      if (ch === "\r") this.#col = 0;
      else if (ch === "\n") {
        this.#row++;
        this.#col = 0;
        this.#ensure();
      } else {
        if (this.#col >= this.columns) {
          // Autowrap: the character goes to the next line.
          this.#row++;
          this.#col = 0;
          this.#ensure();
        }
        const line = this.#rows[this.#row]!;
        while (line.length < this.#col) line.push(" ");
        line[this.#col] = ch;
        this.#col++;
      }
    }
    return true;
  }

  /** The screen's lines (trailing spaces and empty last lines removed). */
  get screen(): string[] {
    const lines = this.#rows.map((r) => r.join("").replace(/\s+$/, ""));
    while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
    return lines;
  }

  /** Everything written, with escape sequences removed. */
  get text(): string {
    return this.writes.join("").replace(ANY_CSI, "");
  }

  #csi(command: string, n: number | undefined, raw: string): void {
    switch (command) {
      case "A":
        this.#row = Math.max(0, this.#row - (n ?? 1));
        return;
      case "J":
        if ((n ?? 0) !== 0) break;
        this.#rows[this.#row]!.length = Math.min(this.#rows[this.#row]!.length, this.#col);
        this.#rows.length = this.#row + 1;
        return;
      case "K":
        if ((n ?? 0) === 2) this.#rows[this.#row] = [];
        else this.#rows[this.#row]!.length = Math.min(this.#rows[this.#row]!.length, this.#col);
        return;
    }
    this.unknown.push(raw);
  }

  #ensure(): void {
    while (this.#rows.length <= this.#row) this.#rows.push([]);
  }
}
