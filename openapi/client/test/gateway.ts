// The running gateway the tests talk to (scripts/web.sh starts it, with a worker and Postgres).
import { createSentinelClient } from "../src/index.js";

export const baseUrl = required("SENTINEL_URL");
export const adminToken = required("SENTINEL_ADMIN_TOKEN");

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run these tests through scripts/web.sh`);
  return value;
}

export const admin = createSentinelClient({ baseUrl, token: adminToken });

/** A new tenant (unique name) and a client holding its first API key. */
export async function newTenant(name = `client-test-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`) {
  const tenant = await admin.ok(admin.api.POST("/v1/admin/tenants", { body: { name, rate_limit_per_sec: 1000, burst: 2000 } }));
  return { tenant, client: createSentinelClient({ baseUrl, token: tenant.api_key }), apiKey: tenant.api_key };
}
