import { fileURLToPath } from "node:url";

/** Where the checked-in simulator scenarios live (`salvo sim --preset NAME`, `--sim NAME`). */
export const SCENARIO_DIR = fileURLToPath(new URL("../../scenarios/", import.meta.url));
