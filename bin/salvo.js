#!/usr/bin/env node
// The `salvo` command: the compiled CLI in dist/ (built by `npm run build`, which `npm ci`, `npm
// pack` and `npm start` run). Plain JavaScript that any Node can parse, so that an older Node gets
// a clear message instead of a syntax or loader error.
const [major = 0, minor = 0] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 12)) {
  process.stderr.write(
    `salvo needs Node.js 22.12 or newer (this is ${process.versions.node}).\n` +
      "In the salvo repository, `npx salvo ...` and `npm start` use the Node 24 it installs.\n",
  );
  process.exit(2);
}
// Node keeps the compiled code of the modules it loads in its compile cache (in the system's temp
// directory): every later start skips parsing them.
const { enableCompileCache } = await import("node:module");
enableCompileCache?.();
const { main } = await import("../dist/cli/main.js").catch((error) => {
  if (error?.code !== "ERR_MODULE_NOT_FOUND") throw error;
  process.stderr.write(
    "salvo: the compiled CLI (dist/) is missing: run `npm run build` in the salvo repository.\n",
  );
  process.exit(2);
});
main();
