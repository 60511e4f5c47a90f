import { describe, expect, it } from "vitest";
import { ServiceGate, Ticket } from "./service-gate.ts";

function enter(gate: ServiceGate, start: () => void): Ticket | undefined {
  const ticket = new Ticket(start);
  return gate.enter(ticket) ? ticket : undefined;
}

describe("ServiceGate", () => {
  it("serves up to `slots` at once and queues the rest in FIFO order", () => {
    const gate = new ServiceGate({ slots: 2, queueLimit: Infinity });
    const started: number[] = [];
    const tickets: Ticket[] = [];
    for (let i = 0; i < 5; i++) tickets.push(enter(gate, () => started.push(i))!);
    expect(started).toEqual([0, 1]);
    expect([gate.inService, gate.queued]).toEqual([2, 3]);
    gate.release(tickets[1]!);
    expect(started).toEqual([0, 1, 2]);
    gate.release(tickets[0]!);
    gate.release(tickets[2]!);
    expect(started).toEqual([0, 1, 2, 3, 4]);
    expect(gate.maxInService).toBe(2);
    expect(gate.maxInServer).toBe(5);
  });

  it("refuses arrivals beyond the queue limit", () => {
    const gate = new ServiceGate({ slots: 1, queueLimit: 2 });
    const results = Array.from({ length: 5 }, () => enter(gate, () => {}));
    expect(results.map((t) => t?.state ?? "refused")).toEqual([
      "serving",
      "queued",
      "queued",
      "refused",
      "refused",
    ]);
    expect(gate.maxInServer).toBe(3);
  });

  it("skips a waiter that was cancelled, and release is idempotent", () => {
    const gate = new ServiceGate({ slots: 1, queueLimit: Infinity });
    const started: string[] = [];
    const a = enter(gate, () => started.push("a"))!;
    const b = enter(gate, () => started.push("b"))!;
    enter(gate, () => started.push("c"));
    gate.release(b);
    gate.release(b);
    expect(gate.queued).toBe(1);
    gate.release(a);
    gate.release(a);
    expect(started).toEqual(["a", "c"]);
    expect(gate.inService).toBe(1);
  });

  it("does not recurse when a ticket finishes synchronously while starting", () => {
    const gate = new ServiceGate({ slots: 1, queueLimit: Infinity });
    let depth = 0;
    let maxDepth = 0;
    const first = enter(gate, () => {})!;
    const order: number[] = [];
    for (let i = 0; i < 10_000; i++) {
      const ticket: { t?: Ticket } = {};
      ticket.t = new Ticket(() => {
        depth++;
        maxDepth = Math.max(maxDepth, depth);
        order.push(i);
        // Finish at once, as a zero-latency answer does.
        if (ticket.t) gate.release(ticket.t);
        depth--;
      });
      gate.enter(ticket.t);
    }
    gate.release(first);
    expect(order.length).toBe(10_000);
    expect(order[9_999]).toBe(9_999);
    expect(maxDepth).toBe(1);
  });

  it("with unlimited slots never queues", () => {
    const gate = new ServiceGate({ slots: Infinity, queueLimit: 0 });
    for (let i = 0; i < 100; i++) expect(enter(gate, () => {})?.state).toBe("serving");
    expect(gate.maxInService).toBe(100);
  });

  it("is full at rejectAbove requests in the server, in service and queued", () => {
    const gate = new ServiceGate({ slots: 2, queueLimit: Infinity, rejectAbove: 3 });
    enter(gate, () => {});
    enter(gate, () => {});
    expect(gate.full).toBe(false);
    enter(gate, () => {}); // queued
    expect(gate.full).toBe(true);
  });
});
