// The dashboard's routes: a static page at `/` and its assets (uPlot's read from its package, no
// build step). The page holds no figures: it polls /salvo/status, which asks for
// a key when the gateway has tenants.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Hono } from "hono";
import { DASHBOARD_CSS, DASHBOARD_HTML, DASHBOARD_JS } from "./dashboard-assets.ts";

type Asset = { body: string; type: string };

let assets: Map<string, Asset> | undefined;

/** The page and its assets; uPlot's are read from the installed package on first use. */
function loadAssets(): Map<string, Asset> {
  const uplot = (file: string) =>
    readFileSync(fileURLToPath(import.meta.resolve(`uplot/dist/${file}`)), "utf8");
  assets ??= new Map<string, Asset>([
    ["/", { body: DASHBOARD_HTML, type: "text/html; charset=utf-8" }],
    ["/salvo/assets/dashboard.js", { body: DASHBOARD_JS, type: "text/javascript; charset=utf-8" }],
    ["/salvo/assets/dashboard.css", { body: DASHBOARD_CSS, type: "text/css; charset=utf-8" }],
    [
      "/salvo/assets/uPlot.iife.min.js",
      { body: uplot("uPlot.iife.min.js"), type: "text/javascript; charset=utf-8" },
    ],
    [
      "/salvo/assets/uPlot.min.css",
      { body: uplot("uPlot.min.css"), type: "text/css; charset=utf-8" },
    ],
  ]);
  return assets;
}

export function dashboardRoutes(app: Hono): void {
  const serve = (path: string) => {
    const asset = loadAssets().get(path)!;
    return new Response(asset.body, {
      headers: {
        "content-type": asset.type,
        "cache-control": "no-cache",
        "x-content-type-options": "nosniff",
        // The page loads only its own assets and talks only to this gateway.
        "content-security-policy":
          "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
      },
    });
  };
  app.get("/", () => serve("/"));
  for (const path of [
    "/salvo/assets/dashboard.js",
    "/salvo/assets/dashboard.css",
    "/salvo/assets/uPlot.iife.min.js",
    "/salvo/assets/uPlot.min.css",
  ])
    app.get(path, () => serve(path));
}
