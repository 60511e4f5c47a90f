// `salvo verify <log>`: checks a call log or decision log (hash chain, checkpoints, torn tail) in
// one streaming pass. Exit 0 intact, 1 tampered, 2 torn tail only (the next open heals it),
// 3 I/O error.
import type { Command } from "commander";
import { HMAC_KEY_ENV } from "../../audit/checkpoint.ts";
import { type VerifyReport, verifyLog } from "../../audit/verify-log.ts";
import { cliCommand } from "../cli-command.ts";
import type { CliIo } from "../io.ts";

const EXIT_BY_STATUS = { intact: 0, tampered: 1, torn_tail: 2, io_error: 3 } as const;

/** The human-readable report. */
export function formatReport(report: VerifyReport): string {
  const out = [`${report.path}: ${report.status.toUpperCase().replace("_", " ")}`];
  if (report.error) out.push(`  error: ${report.error}`);
  out.push(
    `  records: ${report.records} in ${report.segments} segment(s); head: ${report.head ?? "none"}`,
    `  checkpoints: ${report.checkpoints.inline} inline, ${report.checkpoints.external} external; ` +
      `MACs ${report.checkpoints.macs_verified} verified, ${report.checkpoints.macs_unverified} not checked (no key)`,
    report.checkpoints.file === null
      ? "  external checkpoints: none read (no checkpoint file): a deleted segment or a cut tail cannot be detected"
      : `  external checkpoints: ${report.checkpoints.file}`,
    `  unanchored records (after the last checkpoint): ${report.unanchored_records}`,
  );
  if (report.healed > 0) out.push(`  healed torn tails: ${report.healed}`);
  const bad = report.first_bad;
  if (bad) {
    out.push(
      `  first bad: ${bad.reason} at record ${bad.index}, line ${bad.line}` +
        (bad.byte_offset >= 0 ? `, byte ${bad.byte_offset}` : ""),
      `    ${bad.message}`,
    );
    if (bad.expected !== undefined) out.push(`    expected: ${bad.expected}`);
    if (bad.actual !== undefined) out.push(`    actual:   ${bad.actual}`);
  }
  return `${out.join("\n")}\n`;
}

export function verifyCommand(io: CliIo): Command {
  return cliCommand("verify", io)
    .description(
      "verify a call log or decision log: hash chain, checkpoints, torn tail; exit 0 intact, 1 tampered, 2 torn tail only, 3 I/O error",
    )
    .argument("<log>", "the log file (JSONL)")
    .option(
      "--checkpoints <file>",
      "checkpoint file kept apart from the log, to detect truncation, deleted segments and rewrites (default: <log>.checkpoints when it exists)",
    )
    .option("--no-checkpoints", "read no checkpoint file (default: read <log>.checkpoints)")
    .option(
      "--hmac-key-env <name>",
      `environment variable holding the checkpoint HMAC key; when set, every checkpoint needs a valid MAC (default: ${HMAC_KEY_ENV})`,
    )
    .option("--json", "print the report as one JSON object (default: off)")
    .action(
      async (
        log: string,
        options: { checkpoints?: string | false; hmacKeyEnv?: string; json?: boolean },
      ) => {
        const key = io.env[options.hmacKeyEnv ?? HMAC_KEY_ENV] || undefined;
        const report = await verifyLog(log, { checkpointsFile: options.checkpoints, hmacKey: key });
        io.stdout.write(options.json ? `${JSON.stringify(report)}\n` : formatReport(report));
        io.exitCode = EXIT_BY_STATUS[report.status];
      },
    );
}
