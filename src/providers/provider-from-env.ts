// The provider for a provider name, configured the way the SDKs configure themselves: the API key
// from an environment variable (OPENAI_API_KEY / ANTHROPIC_API_KEY, or one the caller names) and
// the base URL from an option or the provider's variable. The key goes to the SDK only; it never
// reaches a message.
import { ConfigError } from "../errors.ts";
import { AnthropicProvider } from "./anthropic-provider.ts";
import { OpenAIProvider } from "./openai-provider.ts";
import type { Provider } from "./provider.ts";
import { BASE_URL_ENV, DEFAULT_BASE_URL, KEY_ENV, type ProviderName } from "./provider-names.ts";

export { BASE_URL_ENV, DEFAULT_BASE_URL, KEY_ENV, type ProviderName };

export type ProviderFromEnvOptions = {
  /** The variable holding the API key. @default OPENAI_API_KEY / ANTHROPIC_API_KEY */
  apiKeyEnv?: string | undefined;
  /** The API's base URL. @default OPENAI_BASE_URL / ANTHROPIC_BASE_URL, else the provider's */
  baseUrl?: string | undefined;
  /** Where variables are read. @default process.env */
  env?: Record<string, string | undefined> | undefined;
};

/** The base URL a provider of this name talks to under these options. */
export function baseUrlFor(name: ProviderName, options: ProviderFromEnvOptions = {}): string {
  const env = options.env ?? process.env;
  return options.baseUrl ?? env[BASE_URL_ENV[name]] ?? DEFAULT_BASE_URL[name];
}

/**
 * The provider of this name with its key from the environment. A local server (a base URL is
 * set: vLLM, Ollama, llama.cpp) may take no key; a real provider without one is a ConfigError.
 */
export function providerFromEnv(
  name: ProviderName,
  options: ProviderFromEnvOptions = {},
): Provider {
  const env = options.env ?? process.env;
  const keyEnv = options.apiKeyEnv ?? KEY_ENV[name];
  const baseURL = options.baseUrl ?? env[BASE_URL_ENV[name]];
  let apiKey = env[keyEnv];
  if (apiKey === undefined || apiKey === "") {
    if (baseURL === undefined) {
      throw new ConfigError({
        field: keyEnv,
        expected: `the ${name} API key in the environment variable ${keyEnv} (or --api-key-env NAME, or --base-url for a local server, or --sim)`,
        got: undefined,
        where: "environment",
      });
    }
    // A placeholder the SDK needs; the provider masks its key everywhere, so it must be a
    // string no answer contains by chance (not a word like "not-needed").
    apiKey = "sk-salvo-no-key-set";
  }
  return name === "anthropic"
    ? new AnthropicProvider({ baseURL, apiKey })
    : new OpenAIProvider({ baseURL, apiKey });
}
