#!/usr/bin/env node
// The `salvo` command. Runs the TypeScript sources directly on Node's built-in type stripping,
// which Node has by default from 22.18 (the repo pins Node 24 through its `node` devDependency,
// so `npx salvo` and the npm scripts use that). This file is plain JavaScript so that an older
// Node gets a clear message instead of a loader error.
const [major = 0, minor = 0] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(
    `salvo needs Node.js 22.18 or newer (this is ${process.versions.node}).\n` +
      "In the salvo repository, `npx salvo ...` and `npm start` use the Node 24 it installs.\n",
  );
  process.exit(2);
}
const { main } = await import("../src/cli/main.ts");
main();
