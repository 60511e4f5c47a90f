// The client's side of a streamed answer: a byte stream the gateway's Response carries, fed event
// by event by the upstream attempt that holds the slot. It opens (and the Response is sent) only
// when the first event is ready, so an attempt that fails before that can still be retried
// unseen; it applies the client's backpressure to the upstream read; and it tells the attempt
// when the client stops reading.

const encoder = new TextEncoder();

export class StreamRelay {
  readonly readable: ReadableStream<Uint8Array>;
  /** Aborted when the client stops reading (disconnect or cancel). */
  readonly cancelled: AbortSignal;
  /** Resolves when the first event is written: the Response may go out. */
  readonly opened: Promise<void>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  readonly #cancel = new AbortController();
  #open: () => void = () => {};
  #isOpen = false;
  #ended = false;
  #ready: (() => void) | undefined;

  constructor(options: { highWaterMark?: number } = {}) {
    this.cancelled = this.#cancel.signal;
    this.opened = new Promise<void>((resolve) => {
      this.#open = resolve;
    });
    this.readable = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.#controller = controller;
        },
        pull: () => {
          this.#ready?.();
          this.#ready = undefined;
        },
        cancel: (reason) => {
          this.#ended = true;
          this.#cancel.abort(reason ?? new Error("the client stopped reading the stream"));
          this.#ready?.();
          this.#ready = undefined;
        },
      },
      new ByteLengthQueuingStrategy({ highWaterMark: options.highWaterMark ?? 64 * 1024 }),
    );
  }

  /** Whether an event has been sent: from then on a failure cannot be retried unseen. */
  get isOpen(): boolean {
    return this.#isOpen;
  }

  /** Passes one event on; resolves when the client can take more (backpressure). */
  write(text: string): Promise<void> {
    if (this.#ended) return Promise.resolve();
    this.#controller.enqueue(encoder.encode(text));
    if (!this.#isOpen) {
      this.#isOpen = true;
      this.#open();
    }
    if ((this.#controller.desiredSize ?? 1) > 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.#ready = resolve;
    });
  }

  /** Ends the stream (after the upstream's last event, or an error event of the gateway's). */
  close(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#controller.close();
  }
}
