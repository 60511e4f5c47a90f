// Salvo's public API. Internals are not exported.
export * from "./errors.ts";
