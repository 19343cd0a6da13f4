/**
 * Checks on uploaded documents and the one place that turns an uploaded file
 * into a `docs` row, shared by the one-call and the batched upload.
 */
import type { Doc, Id } from "../_generated/dataModel";
import { refuse } from "./errors";
import {
  MAX_CONTENT_BYTES_PER_CALL,
  MAX_DOC_CONTENT_BYTES,
  MAX_FILES_PER_CALL,
  MAX_RUN_ID_LENGTH,
  MAX_SLUG_LENGTH,
  MAX_TITLE_LENGTH,
  utf8Length,
} from "./limits";
import type { DocFile } from "./validators";

/** Same rule as `Document.slug` in the course contract. */
const SLUG_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const SHA256_PATTERN = /^[0-9a-f]{64}$/;
const RUN_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;
/** `chapterIndex` of documents that are not chapters (course contract). */
export const NOT_A_CHAPTER = -1;

export type DocFields = Omit<Doc<"docs">, "_id" | "_creationTime">;

export function checkRunId(runId: string): void {
  if (runId.length === 0 || runId.length > MAX_RUN_ID_LENGTH || !RUN_ID_PATTERN.test(runId)) {
    refuse(
      "INVALID_ARGUMENT",
      `runId must match ${RUN_ID_PATTERN} (at most ${MAX_RUN_ID_LENGTH} characters)`,
      {
        field: "runId",
      },
    );
  }
}

/** Refuses a set of files that breaks a limit or the slug rules, naming the file. */
export function checkFiles(files: readonly DocFile[]): void {
  if (files.length > MAX_FILES_PER_CALL) {
    refuse(
      "LIMIT_EXCEEDED",
      `at most ${MAX_FILES_PER_CALL} files per call, got ${files.length}: split the upload with docs:putBatch`,
      {
        limit: "filesPerCall",
        max: MAX_FILES_PER_CALL,
        actual: files.length,
      },
    );
  }
  const seen = new Set<string>();
  let totalBytes = 0;
  for (const file of files) {
    const slug = file.slug;
    if (slug.length > MAX_SLUG_LENGTH || !SLUG_PATTERN.test(slug)) {
      refuse(
        "INVALID_ARGUMENT",
        `slug ${JSON.stringify(slug.slice(0, MAX_SLUG_LENGTH))} must match ${SLUG_PATTERN} (at most ${MAX_SLUG_LENGTH} characters)`,
        {
          field: "slug",
        },
      );
    }
    if (seen.has(slug)) {
      refuse("INVALID_ARGUMENT", `slug ${slug} appears twice in one call`, { field: "slug", slug });
    }
    seen.add(slug);
    if (file.title.length > MAX_TITLE_LENGTH) {
      refuse("LIMIT_EXCEEDED", `title of ${slug} exceeds ${MAX_TITLE_LENGTH} characters`, {
        limit: "titleChars",
        max: MAX_TITLE_LENGTH,
        actual: file.title.length,
        slug,
      });
    }
    const index = file.chapterIndex;
    if (index !== undefined && (!Number.isInteger(index) || index < NOT_A_CHAPTER)) {
      refuse("INVALID_ARGUMENT", `chapterIndex of ${slug} must be an integer >= ${NOT_A_CHAPTER}`, {
        field: "chapterIndex",
        slug,
      });
    }
    if (file.sha256 !== undefined && !SHA256_PATTERN.test(file.sha256)) {
      refuse("INVALID_ARGUMENT", `sha256 of ${slug} must be 64 lowercase hex digits`, {
        field: "sha256",
        slug,
      });
    }
    const bytes = utf8Length(file.content);
    if (bytes > MAX_DOC_CONTENT_BYTES) {
      refuse(
        "LIMIT_EXCEEDED",
        `content of ${slug} is ${bytes} bytes, more than ${MAX_DOC_CONTENT_BYTES}`,
        {
          limit: "docContentBytes",
          max: MAX_DOC_CONTENT_BYTES,
          actual: bytes,
          slug,
        },
      );
    }
    totalBytes += bytes;
  }
  if (totalBytes > MAX_CONTENT_BYTES_PER_CALL) {
    refuse(
      "LIMIT_EXCEEDED",
      `${totalBytes} content bytes in one call, more than ${MAX_CONTENT_BYTES_PER_CALL}: split the upload with docs:putBatch`,
      {
        limit: "contentBytesPerCall",
        max: MAX_CONTENT_BYTES_PER_CALL,
        actual: totalBytes,
      },
    );
  }
}

export function toDocFields(
  job: Doc<"jobs">,
  repositoryId: Id<"repositories">,
  runId: string,
  file: DocFile,
  now: number,
): DocFields {
  const fields: DocFields = {
    jobId: job._id,
    repositoryId,
    runId,
    kind: file.kind,
    slug: file.slug,
    title: file.title,
    chapterIndex: file.chapterIndex ?? NOT_A_CHAPTER,
    content: file.content,
    createdAt: now,
  };
  if (file.sha256 !== undefined) fields.sha256 = file.sha256;
  if (file.sourcePath !== undefined) fields.sourcePath = file.sourcePath;
  return fields;
}

/** True when a stored row already holds exactly what the file says. */
export function sameDocument(row: Doc<"docs">, file: DocFile): boolean {
  return (
    row.kind === file.kind &&
    row.title === file.title &&
    row.chapterIndex === (file.chapterIndex ?? NOT_A_CHAPTER) &&
    row.content === file.content &&
    row.sha256 === file.sha256 &&
    row.sourcePath === file.sourcePath
  );
}

/** Documents in the order the UI lists them: by chapter position, then slug. */
export function inCourseOrder(rows: Doc<"docs">[]): Doc<"docs">[] {
  return rows.sort((a, b) =>
    a.chapterIndex !== b.chapterIndex
      ? a.chapterIndex - b.chapterIndex
      : a.slug < b.slug
        ? -1
        : a.slug > b.slug
          ? 1
          : 0,
  );
}
