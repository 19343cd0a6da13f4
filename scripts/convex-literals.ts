/**
 * Writes contracts/convex-literals.json from convex/lib/validators.ts, the one
 * list of job statuses, document kinds and log levels, so the Python side can
 * compare fondation_contracts against it without Node:
 *
 *   npm run literals
 *
 * convex/lib/validators.test.ts fails while the file is stale.
 */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

import { literalsFileText } from "../convex/lib/validators";

const target = fileURLToPath(new URL("../contracts/convex-literals.json", import.meta.url));
writeFileSync(target, literalsFileText());
process.stdout.write(`wrote ${target}\n`);
