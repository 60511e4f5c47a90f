// Audit logs that lose nothing: call context, the call log, the decision log, checkpoints and
// verification. Exported as a whole from the package root.
export { type AuditContext, currentContext, withContext } from "./audit-context.ts";
export type { AttemptAudit, AttemptInfo, CallAuditor } from "./call-auditor.ts";
export { CallLog, type CallLogOptions, type CallRef, openCallLog } from "./call-log.ts";
export { type CallRecord, type ContentMode, DEFAULT_HEADER_ALLOWLIST } from "./call-record.ts";
export { type AppendResult, ChainLog, type ChainLogOptions, openChainLog } from "./chain-log.ts";
export { type Checkpoint, HMAC_KEY_ENV } from "./checkpoint.ts";
export {
  type DecisionInputs,
  DecisionLog,
  type DecisionLogOptions,
  openDecisionLog,
} from "./decision-log.ts";
export type { FsyncPolicy, LineWriterOptions } from "./line-writer.ts";
export {
  type BadRecord,
  type VerifyOptions,
  type VerifyReason,
  type VerifyReport,
  type VerifyStatus,
  verifyLog,
} from "./verify-log.ts";
