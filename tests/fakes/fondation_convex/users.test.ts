import { expect, test } from "vitest";

import { api, internal } from "./_generated/api";
import { newFondation } from "./test.helpers";

test("a user's token is found by githubId, as stored, or null", async () => {
  const t = newFondation();
  const stored = "enc_v1_00:11:22";
  const userId = await t.mutation(internal.seed.user, {
    githubId: "42",
    githubAccessToken: stored,
  });
  await t.mutation(internal.seed.user, { githubId: "7" });
  expect(await t.query(api.users.getUserById, { userId })).toMatchObject({ githubId: "42" });
  expect(await t.query(api.users.getGitHubToken, { githubId: "42" })).toBe(stored);
  expect(await t.query(api.users.getGitHubToken, { githubId: "7" })).toBeNull();
  expect(await t.query(api.users.getGitHubToken, { githubId: "nobody" })).toBeNull();
  await t.mutation(internal.seed.remove, { table: "users", id: userId });
  expect(await t.query(api.users.getUserById, { userId })).toBeNull();
});
