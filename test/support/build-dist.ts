// Vitest global setup: tests that run `bin/salvo.js` as a process run the compiled CLI in dist/,
// so it is rebuilt from the sources first (a few seconds) and never tested stale.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

export default function setup(): void {
  const root = fileURLToPath(new URL("../../", import.meta.url));
  execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], {
    cwd: root,
    stdio: "inherit",
  });
}
