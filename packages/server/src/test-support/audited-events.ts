import { randomBytes } from 'node:crypto';
import { createAuditLog, createEventBus, type AtomicStep, type EventBus } from '../events/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation, type Db } from '../store/index.ts';

/**
 * A real audit log (anchored) and event bus over a test store, for a service's tests that check every change
 * commits with its event: `failOnceAt(step)` makes the next change fail at that step of `atomically` (after
 * the write, a failed write; after the commit, a crash), through the bus's test seam.
 */
export async function createAuditedEvents(
  db: Db,
  options: {
    now: () => number;
    /** The bus retries a transaction another process held. */ retryBusy?: boolean;
  },
) {
  const box = createSecretBox(randomBytes(32));
  const audit = createAuditLog({
    db,
    mac: box,
    now: options.now,
    isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
  });
  await audit.ensureAnchor();
  let failAt: AtomicStep | undefined;
  /** A bus over the same log and seam: a new one is the next start (it relays what the outbox holds). */
  const newBus = (): EventBus =>
    createEventBus({
      log: audit,
      db,
      ...(options.retryBusy ? { isBusy } : {}),
      onAtomicStep: (step) => {
        if (step !== failAt) return;
        failAt = undefined;
        throw new Error(`failed at ${step}`);
      },
    });
  return {
    box,
    audit,
    bus: newBus(),
    newBus,
    failOnceAt(step: AtomicStep) {
      failAt = step;
    },
    /** Whether the failure set by `failOnceAt` is still to come (the change never reached that step). */
    failurePending: () => failAt !== undefined,
  };
}
