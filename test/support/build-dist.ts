// Vitest global setup: tests that run `bin/salvo.js` as a process run the compiled CLI in dist/,
// so it is rebuilt from the sources first (a few seconds) and never tested stale.
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { fileURLToPath } from "node:url";

export default function setup(): void {
  const root = fileURLToPath(new URL("../../", import.meta.url));
  // From scratch, as `npm run build` does: a module deleted from src/ must not linger in dist/.
  rmSync(`${root}dist`, { recursive: true, force: true });
  execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], {
    cwd: root,
    stdio: "inherit",
  });
}
