import { z } from 'zod';
import type { Db } from '../store/index.ts';

/** How long a challenge stays good, and the timeout the browser is told. */
export const CHALLENGE_TTL_MS = 180_000;

const challengePurposes = ['register', 'authenticate'] as const;
export type ChallengePurpose = (typeof challengePurposes)[number];
const storedChallenge = z.object({
  purpose: z.enum(challengePurposes),
  challenge: z.string(),
  expiresAt: z.number(),
});

const clientData = z.object({ type: z.string(), challenge: z.string(), origin: z.string() });

const shown = (value: string) => JSON.stringify(value.length > 100 ? `${value.slice(0, 100)}…` : value);

/**
 * Challenges live on the session row and are taken (cleared) by the first verification that reads them,
 * whatever its outcome, so each works once.
 */
export function challengeStore(deps: { db: Db; now: () => number }) {
  const { db, now } = deps;

  async function put(sessionIdHash: string, purpose: ChallengePurpose, challenge: string): Promise<void> {
    const record = { purpose, challenge, expiresAt: now() + CHALLENGE_TTL_MS };
    await db
      .updateTable('sessions')
      .set({ challenge: JSON.stringify(record) })
      .where('id_hash', '=', sessionIdHash)
      .execute();
  }

  /** Reads and clears the session's pending challenge; only one caller can take a given challenge. */
  async function take(
    sessionIdHash: string,
    purpose: ChallengePurpose,
  ): Promise<{ challenge: string } | { problem: string }> {
    const row = await db
      .selectFrom('sessions')
      .select('challenge')
      .where('id_hash', '=', sessionIdHash)
      .executeTakeFirst();
    const none = { problem: 'no challenge is pending (each one works once)' };
    if (!row?.challenge) return none;
    const taken = await db
      .updateTable('sessions')
      .set({ challenge: null })
      .where('id_hash', '=', sessionIdHash)
      .where('challenge', '=', row.challenge)
      .executeTakeFirst();
    if (Number(taken.numUpdatedRows) !== 1) return none;
    let parsed: z.infer<typeof storedChallenge> | undefined;
    try {
      parsed = storedChallenge.parse(JSON.parse(row.challenge));
    } catch {
      return none;
    }
    if (parsed.purpose !== purpose) return none;
    if (parsed.expiresAt <= now()) return { problem: 'the challenge has expired' };
    return { challenge: parsed.challenge };
  }

  return { put, take };
}

export type ChallengeStore = ReturnType<typeof challengeStore>;

/** What a response's client data must say. */
export interface ExpectedClientData {
  type: 'webauthn.create' | 'webauthn.get';
  challenge: string;
  origins: readonly string[];
}

/**
 * The checks of WebAuthn L3 §7.1 steps 7-9 / §7.2 steps 11-13 done before the library repeats them, so that
 * a refusal can say which one failed (the library's messages are not for clients).
 */
export function checkClientData(
  clientDataJSON: string,
  expected: ExpectedClientData,
): { reason: string; message: string } | undefined {
  let data: z.infer<typeof clientData>;
  try {
    data = clientData.parse(JSON.parse(Buffer.from(clientDataJSON, 'base64url').toString('utf8')));
  } catch {
    return { reason: 'malformed client data', message: 'clientDataJSON is not valid client data' };
  }
  if (data.type !== expected.type)
    return {
      reason: 'wrong ceremony type',
      message: `the response is of type ${shown(data.type)}, expected ${expected.type}`,
    };
  if (!expected.origins.includes(data.origin))
    return {
      reason: `wrong origin ${data.origin.slice(0, 100)}`,
      message: `the response was made for origin ${shown(data.origin)}, not for this server (${expected.origins.join(', ')})`,
    };
  if (data.challenge !== expected.challenge)
    return {
      reason: 'challenge does not match (stale or replayed response)',
      message: 'the response answers another challenge (stale or replayed): request new options',
    };
  return undefined;
}
