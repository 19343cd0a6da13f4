import { expect, test } from "vitest";

import { api, internal } from "./_generated/api";
import { newFondation } from "./test.helpers";

test("getByRepositoryId returns the clone facts, defaultBranch optional", async () => {
  const t = newFondation();
  const userId = await t.mutation(internal.seed.user, {});
  const withBranch = await t.mutation(internal.seed.repository, {
    userId,
    fullName: "acme/widgets",
    defaultBranch: "trunk",
  });
  const without = await t.mutation(internal.seed.repository, { userId, fullName: "acme/old" });
  expect(
    await t.query(api.repositories.getByRepositoryId, { repositoryId: withBranch }),
  ).toMatchObject({ fullName: "acme/widgets", defaultBranch: "trunk", name: "widgets" });
  const old = await t.query(api.repositories.getByRepositoryId, { repositoryId: without });
  expect(old?.defaultBranch).toBeUndefined();
});
