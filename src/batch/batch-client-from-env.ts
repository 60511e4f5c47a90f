// The batch API client for a provider name, configured as `providerFromEnv` configures the
// real-time provider: the key from OPENAI_API_KEY / ANTHROPIC_API_KEY (or a variable the caller
// names), the base URL from an option or the provider's variable. The key goes to the SDK only.
import { ConfigError } from "../errors.ts";
import {
  BASE_URL_ENV,
  KEY_ENV,
  type ProviderFromEnvOptions,
  type ProviderName,
} from "../providers/provider-from-env.ts";
import { AnthropicBatchClient } from "./anthropic-batch-client.ts";
import { OpenAIBatchClient } from "./openai-batch-client.ts";
import type { BatchLimits, ProviderBatchClient } from "./provider-batch-client.ts";

export function batchClientFromEnv(
  name: ProviderName,
  options: ProviderFromEnvOptions & { limits?: Partial<BatchLimits> | undefined } = {},
): ProviderBatchClient {
  const env = options.env ?? process.env;
  const keyEnv = options.apiKeyEnv ?? KEY_ENV[name];
  const baseURL = options.baseUrl ?? env[BASE_URL_ENV[name]];
  let apiKey = env[keyEnv];
  if (apiKey === undefined || apiKey === "") {
    if (baseURL === undefined)
      throw new ConfigError({
        field: keyEnv,
        expected: `the ${name} API key in the environment variable ${keyEnv} (or --api-key-env NAME, or --base-url for a local server, or --sim)`,
        got: undefined,
        where: "environment",
      });
    apiKey = "not-needed";
  }
  return name === "anthropic"
    ? new AnthropicBatchClient({ apiKey, baseURL, limits: options.limits })
    : new OpenAIBatchClient({ apiKey, baseURL, limits: options.limits });
}
