// Where a value of a parsed YAML (or JSON) document is, as `file:line`, for error messages that
// name the place: the pipeline file and the gateway's config file read their documents with it.
import { type Document, isMap, isNode, isScalar, isSeq, type LineCounter } from "yaml";

/** A path of keys and indexes into a document. */
export type YamlPath = ReadonlyArray<string | number>;

/** Lines of a parsed YAML (or JSON) document, for error messages. */
export class YamlLocator {
  readonly #doc: Document;
  readonly #lines: LineCounter;
  readonly file: string;

  constructor(doc: Document, lines: LineCounter, file: string) {
    this.#doc = doc;
    this.#lines = lines;
    this.file = file;
  }

  /** `file:line` of the deepest key or item on `path` present in the file. */
  where(path: YamlPath): string {
    let node: unknown = this.#doc.contents;
    let line: number | undefined;
    for (const key of path) {
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(key));
        if (!pair) break;
        if (isNode(pair.key) && pair.key.range) line = this.#line(pair.key.range[0]);
        node = pair.value;
      } else if (isSeq(node)) {
        node = node.items[Number(key)];
        if (isNode(node) && node.range) line = this.#line(node.range[0]);
      } else break;
    }
    return line === undefined ? this.file : `${this.file}:${line}`;
  }

  /** `file:line` of `offset` in the string at `path` (exact in block scalars: `prompt: |`). */
  whereIn(path: YamlPath, offset: number): string {
    const node = this.#doc.getIn(path, true);
    if (!isScalar(node) || !node.range || typeof node.value !== "string") return this.where(path);
    let line = this.#line(node.range[0]);
    if (node.type === "BLOCK_LITERAL" || node.type === "BLOCK_FOLDED") line += 1;
    if (node.type !== "BLOCK_FOLDED")
      line += (node.value.slice(0, offset).match(/\n/g) ?? []).length;
    return `${this.file}:${line}`;
  }

  #line(offset: number): number {
    return this.#lines.linePos(offset).line;
  }
}
