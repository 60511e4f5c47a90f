// Counts per group of items, for the nested lines under the overall bar: a pipeline's stages, or
// the library's named scopes (claims x items). Built from the scheduler's events, like the run's
// metrics; a group whose ends are known elsewhere (a pipeline task reused or skipped without a
// call) is told them with `ended`. One snapshot serves every line, so all lines are in sync.
import type { ItemId } from "../core/outcome.ts";
import type { EventSource } from "../metrics/run-metrics.ts";

/**
 * How a group's items ended. `stopped`: by an interrupt or abort (not a failure). `skipped`:
 * without a call (e.g. a failed dependency). `resumed`: done by an earlier run.
 */
export type GroupEnd = "succeeded" | "failed" | "stopped" | "skipped" | "resumed";

/** One group's counts at one moment. */
export type GroupSnapshot = {
  name: string;
  /** Items expected (declared), or seen so far when not declared. */
  total: number;
  /** Whether `total` was declared (else more items may still come). */
  declared: boolean;
  succeeded: number;
  failed: number;
  stopped: number;
  /** Ended without a call (skipped for a failed dependency). */
  skipped: number;
  /** Done by an earlier run (reused from its journal). */
  resumed: number;
  /** Attempts running now. */
  inFlight: number;
  retries: number;
  rateLimited: number;
  /** Every item ended (and nothing is in flight). */
  finished: boolean;
};

/** Several groups' counts added up (those collapsed, or those beyond the lines shown). */
export type GroupTotals = {
  groups: number;
  total: number;
  succeeded: number;
  failed: number;
  stopped: number;
  skipped: number;
  resumed: number;
  inFlight: number;
  /** The names of the last few groups added (newest last). */
  names: string[];
};

/** What the lines show at one moment. */
export type GroupsView = {
  /** Groups on their own line: running, or finished less than `lingerMs` ago. */
  lines: GroupSnapshot[];
  /** Running groups beyond `maxLines`, added up. */
  more: GroupTotals | undefined;
  /** Finished groups collapsed into one line. */
  done: GroupTotals | undefined;
};

export type ViewOptions = {
  /** At most this many groups get a line of their own. @default 8 */
  maxLines?: number | undefined;
  /** A finished group keeps its line this long, then collapses, ms. @default 2_000 */
  lingerMs?: number | undefined;
};

const KEPT_NAMES = 8;

function emptyTotals(): GroupTotals {
  return {
    groups: 0,
    total: 0,
    succeeded: 0,
    failed: 0,
    stopped: 0,
    skipped: 0,
    resumed: 0,
    inFlight: 0,
    names: [],
  };
}

function addTo(totals: GroupTotals, g: GroupSnapshot): void {
  totals.groups++;
  totals.total += g.total;
  totals.succeeded += g.succeeded;
  totals.failed += g.failed;
  totals.stopped += g.stopped;
  totals.skipped += g.skipped;
  totals.resumed += g.resumed;
  totals.inFlight += g.inFlight;
  totals.names.push(g.name);
  if (totals.names.length > KEPT_NAMES) totals.names.shift();
}

export type ProgressGroupsOptions = {
  /** The group of an item's events; undefined: the item is in none (only the overall line). */
  groupOf: (item: { id: ItemId; scope: string | undefined }) => string | undefined;
  /** What the groups are, for the collapsed line (`stages`, `scopes`). @default "groups" */
  noun?: string | undefined;
  /**
   * Items end with their terminal events (`succeeded`, `failed`); false when every end is
   * reported with `ended` instead (a pipeline's tasks, some of which never reach the scheduler).
   * @default true
   */
  endsFromEvents?: boolean | undefined;
};

const STOP_REASONS = new Set(["aborted", "closed"]);

class Group {
  readonly name: string;
  total = 0;
  declared = false;
  succeeded = 0;
  failed = 0;
  stopped = 0;
  skipped = 0;
  resumed = 0;
  retries = 0;
  rateLimited = 0;
  /** Running attempts by item id (a count: ids given by callers may repeat). */
  readonly running = new Map<ItemId, number>();
  inFlight = 0;
  /** When a view first saw it finished (its line lingers from then). */
  finishedAt: number | undefined;
  constructor(name: string) {
    this.name = name;
  }
  get ended(): number {
    return this.succeeded + this.failed + this.stopped + this.skipped + this.resumed;
  }
  start(id: ItemId): void {
    this.running.set(id, (this.running.get(id) ?? 0) + 1);
    this.inFlight++;
  }
  stop(id: ItemId): void {
    const n = this.running.get(id);
    if (n === undefined) return;
    if (n <= 1) this.running.delete(id);
    else this.running.set(id, n - 1);
    this.inFlight--;
  }
  end(how: GroupEnd): void {
    this[how]++;
  }
  snapshot(): GroupSnapshot {
    return {
      name: this.name,
      total: this.declared ? this.total : Math.max(this.total, this.ended),
      declared: this.declared,
      succeeded: this.succeeded,
      failed: this.failed,
      stopped: this.stopped,
      skipped: this.skipped,
      resumed: this.resumed,
      inFlight: this.inFlight,
      retries: this.retries,
      rateLimited: this.rateLimited,
      // An undeclared group is finished once what it was given has ended; a declared one (a
      // stage, perhaps of no task at all) once its declared total has.
      finished:
        this.inFlight === 0 && this.ended >= this.total && (this.declared || this.total > 0),
    };
  }
}

export class ProgressGroups {
  readonly noun: string;
  readonly #groupOf: ProgressGroupsOptions["groupOf"];
  readonly #endsFromEvents: boolean;
  /** In display order: declared first, then as first seen. Collapsed groups leave it. */
  readonly #groups = new Map<string, Group>();
  readonly #done = emptyTotals();

  constructor(options: ProgressGroupsOptions) {
    this.#groupOf = options.groupOf;
    this.noun = options.noun ?? "groups";
    this.#endsFromEvents = options.endsFromEvents ?? true;
  }

  /** Declares a group and how many items it will have (a pipeline's stage), in display order. */
  declare(name: string, total: number): void {
    const group = this.#group(name);
    group.declared = true;
    group.total = total;
  }

  /** An item of `group` ended (for groups whose ends are not read from events). */
  ended(name: string, how: GroupEnd): void {
    const group = this.#group(name);
    group.end(how);
    if (!group.declared) group.total = Math.max(group.total, group.ended);
  }

  /** Subscribes to a scheduler's events; returns a function that unsubscribes. */
  attach(events: EventSource): () => void {
    const of = (e: { id: ItemId; scope: string | undefined }) => {
      const name = this.#groupOf(e);
      return name === undefined ? undefined : this.#group(name);
    };
    const offs = [
      events.on("queued", (e) => {
        const group = of(e);
        if (group !== undefined && e.attempt === 1 && !group.declared) group.total++;
      }),
      events.on("started", (e) => of(e)?.start(e.id)),
      events.on("attempt-failed", (e) => of(e)?.stop(e.id)),
      events.on("retry-scheduled", (e) => {
        const group = of(e);
        if (group !== undefined) group.retries++;
      }),
      events.on("rate-limited", (e) => {
        const group = of(e);
        if (group !== undefined) group.rateLimited++;
      }),
      events.on("succeeded", (e) => {
        const group = of(e);
        group?.stop(e.id);
        if (this.#endsFromEvents) group?.end("succeeded");
      }),
      events.on("failed", (e) => {
        const group = of(e);
        group?.stop(e.id);
        if (this.#endsFromEvents) group?.end(STOP_REASONS.has(e.reason) ? "stopped" : "failed");
      }),
    ];
    return () => {
      for (const off of offs) off();
    };
  }

  /** Every group's counts now, in display order (collapsed ones not included). */
  snapshot(): GroupSnapshot[] {
    return [...this.#groups.values()].map((group) => group.snapshot());
  }

  /**
   * The lines at `now` (the renderer's clock, ms): running groups and those finished less than
   * `lingerMs` ago each on a line, up to `maxLines`; finished ones past that collapse into one
   * total (and leave memory: a run of a million scopes keeps only their sums).
   */
  view(now: number, options: ViewOptions = {}): GroupsView {
    const maxLines = options.maxLines ?? 8;
    const lingerMs = options.lingerMs ?? 2_000;
    const lines: GroupSnapshot[] = [];
    let more: GroupTotals | undefined;
    for (const [name, group] of this.#groups) {
      const g = group.snapshot();
      if (!g.finished) group.finishedAt = undefined;
      else if (group.finishedAt === undefined) group.finishedAt = now;
      if (group.finishedAt !== undefined && now - group.finishedAt >= lingerMs) {
        addTo(this.#done, g);
        this.#groups.delete(name);
        continue;
      }
      if (lines.length < maxLines) lines.push(g);
      else {
        more ??= emptyTotals();
        addTo(more, g);
      }
    }
    const done =
      this.#done.groups === 0 ? undefined : { ...this.#done, names: [...this.#done.names] };
    return { lines, more, done };
  }

  #group(name: string): Group {
    let group = this.#groups.get(name);
    if (group === undefined) {
      group = new Group(name);
      this.#groups.set(name, group);
    }
    return group;
  }
}
