// The providers Salvo knows by name, and where their SDKs look for a key and a base URL. Plain
// constants: the CLI's option help reads them without loading an SDK.

/** The providers a batch line can be shaped for. */
export type ProviderName = "openai" | "anthropic";

export const KEY_ENV: Record<ProviderName, string> = {
  openai: "OPENAI_API_KEY",
  anthropic: "ANTHROPIC_API_KEY",
};

export const BASE_URL_ENV: Record<ProviderName, string> = {
  openai: "OPENAI_BASE_URL",
  anthropic: "ANTHROPIC_BASE_URL",
};

/** The SDKs' default base URLs: what a fingerprint names when no other is set. */
export const DEFAULT_BASE_URL: Record<ProviderName, string> = {
  openai: "https://api.openai.com/v1",
  anthropic: "https://api.anthropic.com",
};
