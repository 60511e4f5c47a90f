#!/usr/bin/env node
// The `salvo` command. Runs the TypeScript sources directly on Node's built-in type stripping
// (Node >= 22.18; the repo pins Node 24 through its `node` devDependency).
import { main } from "../src/cli/main.ts";

main();
