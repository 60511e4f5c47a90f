// Salvo's public API. Internals are not exported.

// Audit: per-call context, the hash-chained call and decision logs, verification.
export * from "./audit/index.ts";
// The providers' batch APIs as a backend of `salvo run` (`backend: "batch" | "auto"`).
export {
  ANTHROPIC_BATCH_LIMITS,
  AnthropicBatchClient,
  type AnthropicBatchClientOptions,
} from "./batch/anthropic-batch-client.ts";
export type { Plan as BackendPlan } from "./batch/backend-plan.ts";
export type { Backend, BackendEvent, BackendReport } from "./batch/batch-backend.ts";
export { batchClientFromEnv } from "./batch/batch-client-from-env.ts";
export {
  OPENAI_BATCH_LIMITS,
  OpenAIBatchClient,
  type OpenAIBatchClientOptions,
} from "./batch/openai-batch-client.ts";
export { type ItemOutcome, itemOutcomeFrom, type OutputLine } from "./batch/output-line.ts";
export type {
  BatchGroup,
  BatchLimits,
  ProviderBatchClient,
  ProviderBatchResult,
  ProviderBatchStatus,
} from "./batch/provider-batch-client.ts";
export {
  type BatchEvent,
  type BatchSummary,
  type RunBatchOptions,
  runBatch,
} from "./batch/run-batch.ts";
// Batch files: `salvo run` as a library call, and the batch driver beneath it.
export {
  type BatchFileEvent,
  type BatchFileResult,
  batchFileShape,
  type RunBatchFileOptions,
  runBatchFile,
} from "./batch/run-batch-file.ts";
// The response cache and request fingerprints (identical requests share one answer).
export { fingerprint, isShareable } from "./cache/fingerprint.ts";
export {
  type CacheStats,
  ResponseCache,
  type ResponseCacheOptions,
} from "./cache/response-cache.ts";
// An admission shared with other processes: the scheduler's hook, and its Redis implementation.
export type {
  AdmissionGate,
  GatePass,
  GateReport,
  GateRequest,
} from "./core/admission-gate.ts";
// Time and randomness, injectable; `FakeClock` for users' own tests.
export { type Clock, RealClock, realClock, type TimerHandle } from "./core/clock.ts";
export {
  AdaptiveConcurrency,
  type AdaptiveConcurrencyOptions,
  type AdaptiveState,
  type StartSource,
} from "./core/concurrency/adaptive-concurrency.ts";
// Concurrency, retries, limits: the interfaces to implement and the standard implementations.
export type {
  AttemptResult,
  AttemptSample,
  AttemptStart,
  ConcurrencyController,
} from "./core/concurrency/concurrency-controller.ts";
export { StaticConcurrency } from "./core/concurrency/static-concurrency.ts";
export type { Listener } from "./core/emitter.ts";
export type * from "./core/events.ts";
export { FakeClock } from "./core/fake-clock.ts";
export type { Usage } from "./core/limits/rate-limits.ts";
export type { Failed, FailureReason, ItemId, Outcome, Succeeded } from "./core/outcome.ts";
export { type Random, seededRandom } from "./core/random.ts";
export type { LimitReading, RateLimitSnapshot } from "./core/rate-limit-snapshot.ts";
export type { Jitter } from "./core/retry/backoff.ts";
export { type Classification, classifyFailure } from "./core/retry/classify-failure.ts";
export { DefaultRetryPolicy, type RetryOptions } from "./core/retry/default-retry-policy.ts";
export type { RetryBudgetOptions } from "./core/retry/retry-budget.ts";
export type {
  GiveUpReason,
  RetryContext,
  RetryDecision,
  RetryPolicy,
} from "./core/retry/retry-policy.ts";
// The scheduler.
export { type BucketState, Scheduler } from "./core/scheduler.ts";
export type {
  Cost,
  MapOptions,
  RunOptions,
  SchedulerOptions,
  ScopeOptions,
  SettleOptions,
  StreamOptions,
} from "./core/scheduler-options.ts";
export { Scope } from "./core/scope.ts";
export type { ItemTask, Task, TaskContext } from "./core/task-context.ts";
// Cost and budgets: prices per model, a run's spending limit.
export { Budget, type BudgetLimits } from "./cost/budget.ts";
export {
  BATCH_PRICE_FACTOR,
  BUILT_IN_PRICES,
  type CallCost,
  type ModelPrice,
  type PriceTable,
  Pricing,
} from "./cost/pricing.ts";
// Scale-out on Redis (ioredis and BullMQ load only when these are used): distributed batches
// (`salvo run --redis`, `salvo worker`), and the shared admission gateways and programs can use.
export type { BatchSettings } from "./distributed/batch-keys.ts";
export { RedisConnection, type RedisConnectionOptions } from "./distributed/redis-connection.ts";
export {
  type DistributedBatchOptions,
  type DistributedBatchResult,
  type DistributedReport,
  runDistributedBatch,
} from "./distributed/run-distributed-batch.ts";
export {
  type RunWorkerOptions,
  runWorker,
  type WorkerEvent,
  type WorkerSummary,
} from "./distributed/run-worker.ts";
export {
  SharedAdmission,
  type SharedAdmissionOptions,
  type SharedAdmissionStats,
} from "./distributed/shared-admission.ts";
export { SharedConcurrency } from "./distributed/shared-concurrency.ts";
export { upstreamKey } from "./distributed/upstream-key.ts";
export * from "./errors.ts";
export { langchainAnthropic, langchainOpenAI } from "./integrations/langchain.ts";
export {
  type GenAiRequest,
  INSTRUMENTATION_NAME,
  instrument,
  type ResponseDescription,
  type TelemetryOptions,
  withGenAiRequest,
} from "./integrations/otel/telemetry.ts";
// Integrations: one fetch for any SDK, the SDK wrappers, OpenTelemetry.
export {
  type SalvoFetch,
  type SalvoFetchOptions,
  type SalvoFetchTarget,
  salvoFetch,
} from "./integrations/salvo-fetch.ts";
export { wrapAnthropic } from "./integrations/wrap-anthropic.ts";
export { wrapOpenAI } from "./integrations/wrap-openai.ts";
// Run metrics and the physical bound M*.
export { type Bound, physicalBound } from "./metrics/physical-bound.ts";
export {
  type GanttTask,
  ganttTasks,
  type HtmlReportInput,
  renderHtmlReport,
  writeHtmlReport,
} from "./metrics/report-html.ts";
export {
  type BoundLimits,
  type LimitInForce,
  RunMetrics,
  type RunSnapshot,
  type RunSummary,
  rateLimitsInForce,
} from "./metrics/run-metrics.ts";
export {
  type LatencyBins,
  type RunSeries,
  RunTimeline,
  type TimelineBucket,
} from "./metrics/run-timeline.ts";
// Pipelines: stages of tasks with item-level dependencies, token-budgeted context, run directories.
export {
  assembleContext,
  type ContextReport,
  type ContextSection,
  type SectionReport,
  truncateToTokens,
} from "./pipeline/context-budget.ts";
export {
  type ContextInput,
  definePipeline,
  type FailurePolicy,
  type PipelineDefinition,
  type StageDefinition,
  type TaskDefinition,
  type TaskInput,
  type TaskSettings,
  type UpstreamResult,
} from "./pipeline/pipeline-definition.ts";
export {
  type FilePipeline,
  loadPipelineFile,
  type PipelineFileOptions,
  parsePipelineFile,
} from "./pipeline/pipeline-file.ts";
export type { PipelineReport, StageReport } from "./pipeline/pipeline-report.ts";
export {
  type PipelineResult,
  type RunPipelineOptions,
  runPipeline,
} from "./pipeline/run-pipeline.ts";
export {
  type PipelineFileEvent,
  type PipelineFileResult,
  type RunPipelineFileOptions,
  runPipelineFile,
} from "./pipeline/run-pipeline-file.ts";
export type { RunStatus, TaskRecord, TaskStatus } from "./pipeline/task-record.ts";
// `salvo probe` as a library call.
export type { KneeOptions, Recommendation } from "./probe/knee.ts";
export {
  type ProbeEndpointOptions,
  type ProbeEndpointResult,
  probeEndpoint,
  probeRequest,
} from "./probe/probe-endpoint.ts";
export type { LevelResult, SweepResult } from "./probe/sweep.ts";
// Progress displays (a live display of several lines, plain lines, JSON lines) over a run's
// metrics; showProgress draws a scheduler's progress with one line per named scope; durations as
// Salvo prints them.
export { formatDuration } from "./progress/format.ts";
export {
  createProgress,
  type ProgressMode,
  type ProgressOptions,
  type ProgressOutput,
  type ProgressRenderer,
} from "./progress/progress-renderer.ts";
export {
  type ProgressHandle,
  type ShowProgressOptions,
  showProgress,
} from "./progress/show-progress.ts";
// Providers: the interface and the adapters (the SDKs' own retries off).
export {
  AnthropicProvider,
  type AnthropicProviderOptions,
} from "./providers/anthropic-provider.ts";
export { errorFromResponse } from "./providers/classify.ts";
export {
  type CustomCall,
  CustomProvider,
  type CustomProviderOptions,
} from "./providers/custom-provider.ts";
export { OpenAIProvider, type OpenAIProviderOptions } from "./providers/openai-provider.ts";
export type {
  CallOptions,
  CostEstimate,
  Provider,
  ProviderRequest,
  ProviderResult,
  TokenUsage,
} from "./providers/provider.ts";
export {
  BASE_URL_ENV,
  baseUrlFor,
  KEY_ENV,
  type ProviderFromEnvOptions,
  type ProviderName,
  providerFromEnv,
} from "./providers/provider-from-env.ts";
export { parseRateLimitHeaders } from "./providers/rate-limit-headers.ts";
// The client: a provider behind a scheduler; and the drop-in for existing OpenAI code.
export {
  type CallOutcome,
  Salvo,
  type SalvoCallOptions,
  type SalvoOptions,
  type SalvoResult,
} from "./salvo.ts";
