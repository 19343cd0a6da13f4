/**
 * Size limits, chosen below Convex's own (1 MiB per document, 16 MiB per
 * call's arguments and per transaction's writes) so a worker hits a clear,
 * named refusal before an opaque platform error.
 */

/** UTF-8 bytes of one document's content. */
export const MAX_DOC_CONTENT_BYTES = 800 * 1024;
/** Documents in one `docs:putBatch` or `docs:upsertFromJob` call. */
export const MAX_FILES_PER_CALL = 100;
/** UTF-8 bytes of all contents in one upload call. */
export const MAX_CONTENT_BYTES_PER_CALL = 8 * 1024 * 1024;
/** Documents in one committed document set. */
export const MAX_DOCS_PER_RUN = 1000;
export const MAX_SLUG_LENGTH = 200;
export const MAX_TITLE_LENGTH = 500;
export const MAX_RUN_ID_LENGTH = 200;

/** Log entries kept per job; older ones are dropped first. */
export const MAX_LOG_ENTRIES_PER_JOB = 200;
/** Longer log messages, progress strings and errors are truncated, not refused:
 * a diagnostic must never be the reason a report fails. */
export const MAX_LOG_MESSAGE_CHARS = 4000;
export const MAX_PROGRESS_CHARS = 500;
export const MAX_ERROR_CHARS = 8000;

export const DEFAULT_LEASE_MS = 5 * 60 * 1000;
export const MIN_LEASE_MS = 1;
export const MAX_LEASE_MS = 24 * 60 * 60 * 1000;
/** Fondation's: a job is dead at its fifth failure. */
export const DEFAULT_MAX_ATTEMPTS = 5;
export const MAX_MAX_ATTEMPTS = 20;

/** Retry backoff, Fondation's: RETRY_BASE_MS * 2^(n-1) plus up to RETRY_JITTER_MS
 * after the n-th failure, never more than RETRY_MAX_MS. */
export const RETRY_BASE_MS = 5_000;
export const RETRY_JITTER_MS = 5_000;
export const RETRY_MAX_MS = 10 * 60 * 1000;

/** Pending jobs `queue:pendingJobs` lists at most. */
export const MAX_PENDING_LISTED = 200;

/** UTF-8 length without allocating an encoded copy of a large string. */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

export function truncate(text: string, maxChars: number): string {
  return text.length <= maxChars ? text : `${text.slice(0, maxChars - 1)}…`;
}
