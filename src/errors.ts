import createError from '@fastify/error'

// Every error keatrail raises on purpose has a stable code from this file, so operators can
// search for it and scripts can match it. Messages take printf-style arguments.

export const PatternSyntaxError = createError<[string, number, string]>(
  'KEATRAIL_ERR_PATTERN_SYNTAX',
  'Invalid log4cplus pattern %s at position %d: %s',
  500
)
export const PatternUnsupportedError = createError<[string, string, number, string]>(
  'KEATRAIL_ERR_PATTERN_UNSUPPORTED',
  'Unsupported construct %s in log4cplus pattern %s at position %d: %s',
  500
)
export const StrftimeUnsupportedError = createError<[string, string, number]>(
  'KEATRAIL_ERR_STRFTIME_UNSUPPORTED',
  'Unsupported strftime code %s in date format %s at position %d',
  500
)
export const TimezoneInvalidError = createError<[string]>(
  'KEATRAIL_ERR_TIMEZONE_INVALID',
  'Unknown IANA time zone %s',
  500
)
export const KeaConfigError = createError<[string, string]>(
  'KEATRAIL_ERR_KEA_CONFIG',
  'Cannot use Kea configuration %s: %s',
  500
)
export const RulesInvalidError = createError<[string, string]>(
  'KEATRAIL_ERR_RULES_INVALID',
  'Invalid message rules in %s: %s',
  500
)
export const ConfigInvalidError = createError<[string, string]>(
  'KEATRAIL_ERR_CONFIG_INVALID',
  'Invalid configuration at %s: %s',
  500
)
export const InputReadError = createError<[string, string]>(
  'KEATRAIL_ERR_INPUT_READ',
  'Cannot read %s: %s',
  500
)
export const StoreWriteError = createError<[string, string]>(
  'KEATRAIL_ERR_STORE_WRITE',
  'The %s store could not write the batch (nothing of it was acknowledged): %s',
  503
)
export const StoreReadError = createError<[string, string]>(
  'KEATRAIL_ERR_STORE_READ',
  'The %s store could not answer: %s',
  503
)
export const StoreSchemaError = createError<[string, string]>(
  'KEATRAIL_ERR_STORE_SCHEMA',
  'The %s store\'s schema is not usable: %s',
  500
)
export const CursorInvalidError = createError<[]>(
  'KEATRAIL_ERR_CURSOR_INVALID',
  'The cursor is not valid for this query',
  400
)
export const UsageError = createError<[string]>(
  'KEATRAIL_ERR_USAGE',
  '%s',
  400
)

export const KeaControlError = createError<[string, string, string]>(
  'KEATRAIL_ERR_KEA_CONTROL',
  'Kea server %s, command %s: %s',
  502
)

export const KibanaError = createError<[string, string]>(
  'KEATRAIL_ERR_KIBANA',
  'Kibana %s: %s',
  502
)

export const QuerySyntaxError = createError<[number, string, string]>(
  'KEATRAIL_ERR_QUERY_SYNTAX',
  'Query syntax error at position %d: expected %s (in %s)',
  400
)

export const ApiAuthError = createError<[string]>(
  'KEATRAIL_ERR_AUTH',
  '%s',
  401
)
export const ApiForbiddenError = createError<[string]>(
  'KEATRAIL_ERR_FORBIDDEN',
  '%s',
  403
)
export const ApiBadRequestError = createError<[string]>(
  'KEATRAIL_ERR_BAD_REQUEST',
  '%s',
  400
)
export const NotFoundError = createError<[string]>(
  'KEATRAIL_ERR_NOT_FOUND',
  '%s',
  404
)

export interface CodedError extends Error {
  code: string
}

export function isCodedError (err: unknown): err is CodedError {
  return err instanceof Error && typeof (err as { code?: unknown }).code === 'string' &&
    (err as CodedError).code.startsWith('KEATRAIL_ERR_')
}

/** Attaches the underlying error (createError's constructors take only message arguments). */
export function withCause<E extends Error> (err: E, cause: unknown): E {
  Object.defineProperty(err, 'cause', { value: cause, enumerable: false, configurable: true, writable: true })
  return err
}

/**
 * Codes of problems keatrail reports in its log and keeps running through (a source that cannot
 * read a file, a corrupt checkpoint…): they are not thrown, but they are as stable as the errors.
 */
export const LOG_CODES = {
  /** A source could not read something (a path, journalctl); it keeps running and retries. */
  source: 'KEATRAIL_ERR_SOURCE',
  /** A file shrank (copytruncate): read again as a new file. */
  sourceTruncated: 'KEATRAIL_ERR_SOURCE_TRUNCATED',
  /** A checkpoint file was unreadable: everything is read again (event ids prevent duplicates). */
  checkpointCorrupt: 'KEATRAIL_ERR_CHECKPOINT_CORRUPT',
  /** A checkpoint could not be written (disk full…): kept in memory and written again later. */
  checkpointWrite: 'KEATRAIL_ERR_CHECKPOINT_WRITE',
  /** A store write failed; the batch is retried and not acknowledged. */
  storeWrite: 'KEATRAIL_ERR_STORE_WRITE',
  /** Shutdown could not write the queued batches in time; they are read again next start. */
  shutdownDeadline: 'KEATRAIL_ERR_SHUTDOWN_DEADLINE',
  /** A second signal: exit without draining. */
  shutdownForced: 'KEATRAIL_ERR_SHUTDOWN_FORCED',
  /** A Kea server did not answer a poll (recorded as an "unreachable" snapshot too). */
  keaUnreachable: 'KEATRAIL_ERR_KEA_UNREACHABLE',
  /** An alert webhook could not be delivered after its retries. */
  webhook: 'KEATRAIL_ERR_WEBHOOK',
  /** The API server could not listen (port taken…): start-up fails (ApiListenError). */
  apiListen: 'KEATRAIL_ERR_API_LISTEN',
  /** A key's stored lease rows could not be read: rebuilt from the stored events (LeaseHistoryDamagedError). */
  leaseHistoryDamaged: 'KEATRAIL_ERR_LEASE_HISTORY_DAMAGED',
  /** Lease wipes past the store's bound (MAX_WIPES, src/leases/wipes.ts) were not applied: recorded as collection gaps. */
  leaseWipesIgnored: 'KEATRAIL_ERR_LEASE_WIPES_IGNORED',
  /** A SQLite store's lease history was derived with other lease domains than this process has (`leases.domains`): its servers' lines now go elsewhere. */
  leaseDomainsChanged: 'KEATRAIL_ERR_LEASE_DOMAINS_CHANGED'
} as const

// API hardening
export const ApiRateLimitError = createError<[string]>(
  'KEATRAIL_ERR_RATE_LIMIT',
  'Rate limit exceeded, retry in %s',
  429
)
export const ApiHostNotAllowedError = createError<[string]>(
  'KEATRAIL_ERR_HOST_NOT_ALLOWED',
  'Host %s is not served here: without API keys keatrail answers only requests addressed to a loopback name (localhost, 127.0.0.1, [::1])',
  421
)
export const ApiCrossSiteError = createError<[string]>(
  'KEATRAIL_ERR_CROSS_SITE',
  'Request from another site (%s) refused: without API keys keatrail answers only its own web UI and non-browser clients',
  403
)

// Source start-up

/** A configured source could not open what it needs (port in use, state directory not writable…): start-up fails. */
export const SourceStartError = createError<[string, string]>(
  'KEATRAIL_ERR_SOURCE_START',
  'Source %s could not start: %s',
  500
)

/** Codes the syslog source logs while it keeps running. */
export const SYSLOG_LOG_CODES = {
  /** A TCP/TLS connection was refused or closed by a limit (per peer, total, first-frame timeout). */
  connectionLimit: 'KEATRAIL_ERR_SYSLOG_CONNECTION_LIMIT',
  /** The UDP spill queue could not be written or read (disk full…): datagrams are dropped and counted. */
  spill: 'KEATRAIL_ERR_SYSLOG_SPILL',
  /** A run of dropped datagrams could not be recorded as a collection gap yet; retried. */
  gap: 'KEATRAIL_ERR_SYSLOG_GAP'
} as const

// CLI mistakes

/** `--pattern` (or a source's `pattern:`) without `%` is a built-in name, and this one is not. */
export const PatternUnknownError = createError<[string, string]>(
  'KEATRAIL_ERR_PATTERN_UNKNOWN',
  'Unknown pattern name %s: the built-in names are %s (a log4cplus pattern has conversions such as %%m)',
  400
)
/** An import whose lines the pattern mostly did not match: stored, but as `unmatched` raw text. */
export const PatternMismatchError = createError<[string, string]>(
  'KEATRAIL_ERR_PATTERN_MISMATCH',
  '%s: %s',
  422
)
/** A gzip file that ends before its end (a copy cut short): what came before the cut was read. */
export const InputTruncatedError = createError<[string, string]>(
  'KEATRAIL_ERR_INPUT_TRUNCATED',
  '%s is a truncated gzip file (%s): the lines before the cut were read, the rest of it is lost',
  500
)
/** The store could not be reached at all (Elasticsearch down, wrong URL). */
export const StoreUnreachableError = createError<[string, string, string]>(
  'KEATRAIL_ERR_STORE_UNREACHABLE',
  'Cannot reach %s at %s: %s',
  503
)
/** The data directory (or a file in it) cannot be created, opened or written. */
export const DataDirError = createError<[string, string]>(
  'KEATRAIL_ERR_DATA_DIR',
  'Cannot use the data directory %s: %s',
  500
)

// Shell

/** A read command named a store that does not exist: only writers (run, import) create one. */
export const StoreMissingError = createError<[string, string]>(
  'KEATRAIL_ERR_STORE_MISSING',
  'No keatrail store at %s: %s',
  500
)
/** Another keatrail writer (keatrail run) holds the data directory. */
export const DataDirLockedError = createError<[string, string]>(
  'KEATRAIL_ERR_DATADIR_LOCKED',
  'Data directory %s is in use by another keatrail run (%s): one writer per data directory',
  500
)
/** The REST API could not listen (port taken, address not available): start-up fails. */
export const ApiListenError = createError<[string, string]>(
  'KEATRAIL_ERR_API_LISTEN',
  'The API cannot listen on %s: %s',
  500
)

// Query cost bounds
export const QueryTooComplexError = createError<[string]>(
  'KEATRAIL_ERR_QUERY_TOO_COMPLEX',
  'The query is too large to answer: %s',
  400
)
export const QueryTimeoutError = createError<[number]>(
  'KEATRAIL_ERR_QUERY_TIMEOUT',
  'The query did not finish within its time budget of %d ms and was stopped; narrow it: a shorter time range, fewer OR terms, smaller CIDR ranges, more specific words',
  503
)
export const QueryBusyError = createError<[number]>(
  'KEATRAIL_ERR_QUERY_BUSY',
  'Too many queries are waiting (%d queued); retry in a moment',
  503
)
export const QueryBucketsError = createError<[string]>(
  'KEATRAIL_ERR_QUERY_BUCKETS',
  'The histogram cannot be answered: %s',
  400
)
/** Log code: the dead-letter store was full and its oldest entries were removed (those events are lost). */
export const DEAD_LETTER_OVERFLOW = 'KEATRAIL_ERR_DEADLETTER_OVERFLOW'

// Shutdown drain

/** Codes the pipeline logs while it stops. */
export const SHUTDOWN_LOG_CODES = {
  /**
   * Events of a source that cannot replay (syslog) were not stored within drainMs: counted in the
   * source's `dropped` and recorded as a collection gap (they are never read again).
   */
  dropped: 'KEATRAIL_ERR_SHUTDOWN_DROPPED'
} as const

// Install and discover

/** Warnings (stderr or the service's log), not errors: the command or source carries on. */
export const INSTALL_LOG_CODES = {
  /** A Kea configuration given to `discover` has no `loggers` (Kea then logs to stdout at INFO). */
  keaNoLoggers: 'KEATRAIL_ERR_KEA_NO_LOGGERS',
  /** A file source's `include` globs match no file yet: it waits for them. */
  sourceNoFiles: 'KEATRAIL_ERR_SOURCE_NO_FILES',
  /** A journal source on a machine without a journal, or whose units have no entries. */
  sourceNoJournal: 'KEATRAIL_ERR_SOURCE_NO_JOURNAL',
  /** A Kea log file outside /var/log/kea: Kea ≥ 2.4.2 / 2.6.3 / 3.0.1 refuse it without KEA_LOG_FILE_DIR. */
  keaLogPath: 'KEATRAIL_ERR_KEA_LOG_PATH'
} as const

// Read bounds

/**
 * 5xx codes whose message is written for the API's client (what to do: retry, narrow the
 * query) and holds nothing of the internals: the API sends it as is. Every other 5xx (store,
 * internal, uncoded) is answered with a generic message, its text going to the log only.
 */
export const CLIENT_MESSAGE_5XX: ReadonlySet<string> = new Set(['KEATRAIL_ERR_QUERY_TIMEOUT', 'KEATRAIL_ERR_QUERY_BUSY'])

// Embedded store v2 (issue 19)

/** A file in the row layout opened with `layout: blocks`: converted by `keatrail store migrate`, never read as empty. */
export const StoreLayoutError = createError<[string]>(
  'KEATRAIL_ERR_STORE_LAYOUT',
  '%s holds events in the row layout; convert it with `keatrail store migrate` (or set store.layout: rows)',
  500
)

/**
 * A key's stored lease history (a lease_log row, its observation bytes or their chunks) cannot be
 * read. The key is rebuilt from the stored events (counted, logged) by the write or read that met
 * it; a read fails with this only when that rebuild failed (the answer fails, the others go on).
 */
export const LeaseHistoryDamagedError = createError<[string, string]>(
  'KEATRAIL_ERR_LEASE_HISTORY_DAMAGED',
  'the stored lease history of %s cannot be read (%s)',
  500
)

// Scale-out (issue 21)

/** store.type names one search engine and store.url answers as the other (their clients differ). */
export const StoreDistributionError = createError<[string, string, string, string]>(
  'KEATRAIL_ERR_STORE_DISTRIBUTION',
  '%s answers as %s, not %s: set store.type: %s (or --store)',
  500
)

// The forensic desk (issue 22)

/** A report or other output file could not be written (a directory that does not exist, no permission, disk full). */
export const OutputWriteError = createError<[string, string]>(
  'KEATRAIL_ERR_OUTPUT_WRITE',
  'Cannot write %s: %s',
  500
)

// Kea control channel bounds

/** Codes the Kea poller logs while it keeps polling. */
export const KEA_LOG_CODES = {
  /** Lease seeding stopped before Kea's last lease page (the paging cursor did not advance, or more pages than the bound): the leases after it are not seeded; counted in leaseSeedsIncomplete. */
  leaseSeedIncomplete: 'KEATRAIL_ERR_KEA_LEASE_SEED_INCOMPLETE',
  /** Kea's answers could not be made into a snapshot, or the store refused it: an "error" snapshot (error.kind internal) is recorded in its place. */
  snapshotFailed: 'KEATRAIL_ERR_KEA_SNAPSHOT'
} as const

// Journal source

/** Codes the journal source logs while it keeps running. */
export const JOURNAL_LOG_CODES = {
  /** journalctl refused the saved cursor ("Failed to seek to cursor"): the journal is read again from its oldest entry (event ids prevent duplicates). */
  cursorRefused: 'KEATRAIL_ERR_JOURNAL_CURSOR'
} as const

// Audit log

/** api.auditLog cannot be made or opened (no permission, no space…): the API does not start. */
export const AuditLogError = createError<[string, string]>(
  'KEATRAIL_ERR_AUDIT_LOG',
  'Cannot use the audit log %s: %s',
  500
)
/**
 * The answer to a read whose audit entry could not be written (disk full, I/O error): the read is
 * refused rather than answered unrecorded. Counted in keatrail_audit_write_failures_total.
 */
export const AuditWriteError = createError<[]>(
  'KEATRAIL_ERR_AUDIT_WRITE',
  'The audit log could not record this read, so it is not answered; retry later (the service log has the detail)',
  503
)
/** Codes the API logs about its audit log while it keeps running. */
export const AUDIT_LOG_CODES = {
  /** Audit entries could not be written: their reads were refused (503) or their batch cut off (throttled: one line per 10 s with the count). */
  write: 'KEATRAIL_ERR_AUDIT_WRITE',
  /** The audit log could not be reopened on SIGHUP: entries keep going to the file that was open. */
  reopen: 'KEATRAIL_ERR_AUDIT_LOG',
  /** A key's reads were refused: it used its share of the audit log (AuditQuotaError; throttled per key). */
  quota: 'KEATRAIL_ERR_AUDIT_QUOTA'
} as const

// Store credentials and output files

/** The search engine refused keatrail's credentials (HTTP 401) or what they may do (403). */
export const StoreAuthError = createError<[string, string, string]>(
  'KEATRAIL_ERR_STORE_AUTH',
  '%s at %s refused keatrail: %s',
  500
)
/** A command's `--out FILE` (`discover`, `lease report`) where FILE exists (or is a symbolic link): replaced only with --force, and never through a link. */
export const OutputFileExistsError = createError<[string, string]>(
  'KEATRAIL_ERR_OUTPUT_EXISTS',
  '%s exists: %s',
  400
)

/**
 * A key that wrote its share of the audit log (api.auditKeyShare of api.auditLogMaxBytes) since
 * the log was last rotated: its reads are refused so that it cannot fill the log and stop every
 * other key's reads. Counted in keatrail_audit_quota_refusals_total.
 */
export const AuditQuotaError = createError<[string, string]>(
  'KEATRAIL_ERR_AUDIT_QUOTA',
  'This key has written its share of the audit log (%s of %s bytes) since the log was last rotated: its reads are refused until an operator rotates it (other keys still read)',
  429
)
