// A real `redis-server` (Debian's package) for the tests of the distributed layer: started on a
// free loopback port with its own temporary directory, stopped and removed after. No mock: BullMQ's
// Lua scripts and Salvo's admission scripts need the real server. Tests that need it skip, with a
// message saying how to install it, only where the binary is absent.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The path of `redis-server`, or undefined when it is not installed. */
export const redisServerPath: string | undefined = (() => {
  try {
    return (
      execFileSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" }).trim() ||
      undefined
    );
  } catch {
    return undefined;
  }
})();

/** Why the Redis tests skip, when they do. */
export const REDIS_MISSING =
  "redis-server is not installed: the Redis tests are skipped (apt-get install -y redis-server)";

if (redisServerPath === undefined) console.warn(`salvo tests: ${REDIS_MISSING}`);

export type RedisServer = {
  /** `redis://127.0.0.1:PORT`. */
  readonly url: string;
  readonly port: number;
  /** Its data directory (the append-only file lives here). */
  readonly dir: string;
  /** Whether the server runs now. */
  readonly running: boolean;
  /** Stops the server (SIGTERM: it writes its data first) and waits for it to exit. */
  stop(): Promise<void>;
  /** Kills the server at once (SIGKILL): what a crash or an OOM kill does. */
  kill(): Promise<void>;
  /** Starts it again on the same port and directory (the data it had persisted comes back). */
  start(): Promise<void>;
  /** Stops the server and removes its directory. */
  close(): Promise<void>;
};

/** A free TCP port on 127.0.0.1 (the kernel's choice for port 0, released at once). */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address !== null
          ? resolve(address.port)
          : reject(new Error("no port")),
      );
    });
  });
}

export type RedisServerOptions = {
  /**
   * Persist every write to an append-only file, fsynced on each write, so that a restart loses
   * nothing (what a production Redis under a job queue should run with). @default true
   */
  appendOnly?: boolean | undefined;
};

/** Starts a `redis-server` on a free loopback port in a new temporary directory. */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  if (redisServerPath === undefined) throw new Error(REDIS_MISSING);
  const binary = redisServerPath;
  const dir = await mkdtemp(join(tmpdir(), "salvo-redis-"));
  const appendOnly = options.appendOnly ?? true;
  let port = 0;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const launch = async (): Promise<void> => {
    const args = [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--dir",
      dir,
      "--save",
      "",
      "--appendonly",
      appendOnly ? "yes" : "no",
      "--appendfsync",
      "always",
      "--protected-mode",
      "yes",
      "--daemonize",
      "no",
      "--loglevel",
      "notice",
    ];
    const proc = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    let log = "";
    exited = new Promise<void>((resolve) => proc.on("exit", () => resolve()));
    await new Promise<void>((resolve, reject) => {
      const onData = (data: Buffer) => {
        log += data;
        if (log.includes("Ready to accept connections")) {
          proc.stdout?.off("data", onData);
          resolve();
        }
      };
      proc.stdout?.on("data", onData);
      proc.stderr?.on("data", (data: Buffer) => {
        log += data;
      });
      proc.on("exit", (code) =>
        reject(new Error(`redis-server exited (${code}) before it was ready: ${log.trim()}`)),
      );
    });
    // Drain its output so that it never blocks on a full pipe.
    proc.stdout?.resume();
    proc.stderr?.resume();
  };

  const stopWith = async (signal: NodeJS.Signals): Promise<void> => {
    const proc = child;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill(signal);
    await exited;
    child = undefined;
  };

  // The port is free when chosen but could be taken before redis binds it: try a few.
  for (let tries = 0; ; tries++) {
    port = await freePort();
    try {
      await launch();
      break;
    } catch (error) {
      if (tries >= 4) {
        await rm(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }

  return {
    get url() {
      return `redis://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    dir,
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    stop: () => stopWith("SIGTERM"),
    kill: () => stopWith("SIGKILL"),
    start: async () => {
      if (child !== undefined && child.exitCode === null && child.signalCode === null) return;
      await launch();
    },
    close: async () => {
      await stopWith("SIGTERM");
      await rm(dir, { recursive: true, force: true });
    },
  };
}
