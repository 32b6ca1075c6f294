import { refusal } from './refusal.ts';
import {
  CONTINUE,
  type BrokerSession,
  type DeliverPacket,
  type DeliverStage,
  type PublishPacket,
  type PublishStage,
  type PublishVerdict,
  type SubscribeRequest,
  type SubscribeStage,
} from './stages.ts';

/** Called once per PUBLISH: null to accept it, an error to refuse it (the connection is then closed). */
export type PublishDone = (err: Error | null) => void;

interface PublishRun {
  session: BrokerSession;
  packet: PublishPacket;
  done: PublishDone;
}

/**
 * The publish stages as one precompiled array. A PUBLISH whose stages all continue at once runs in one
 * loop with no allocation; a wait or a pending verdict (throttling, a retained write) goes on later from
 * the next stage.
 */
export function createPublishPipeline(stages: readonly PublishStage[]) {
  const list = [...stages];

  function settle(run: PublishRun, index: number, verdict: PublishVerdict): void {
    switch (verdict.kind) {
      case 'continue':
        resume(run, index + 1);
        return;
      case 'deny':
        run.done(refusal(verdict.reason));
        return;
      case 'wait': {
        const { session } = run;
        session.transport.pause();
        setTimeout(() => {
          session.transport.resume();
          // The session may have been dropped (revoked, banned) while waiting: then nothing goes through.
          if (!session.active) run.done(refusal('session ended'));
          else resume(run, index + 1);
        }, verdict.ms).unref();
        return;
      }
      case 'pending':
        verdict.verdict.then(
          (next) => settle(run, index, next),
          (err: unknown) => run.done(err instanceof Error ? err : refusal(String(err))),
        );
        return;
    }
  }

  function resume(run: PublishRun, from: number): void {
    for (let i = from; i < list.length; i++) {
      const verdict = list[i]?.run(run.session, run.packet) ?? CONTINUE;
      if (verdict === CONTINUE) continue;
      settle(run, i, verdict);
      return;
    }
    run.done(null);
  }

  return {
    stages: list as readonly PublishStage[],
    run(session: BrokerSession, packet: PublishPacket, done: PublishDone): void {
      for (let i = 0; i < list.length; i++) {
        const verdict = list[i]?.run(session, packet) ?? CONTINUE;
        if (verdict === CONTINUE) continue;
        settle({ session, packet, done }, i, verdict);
        return;
      }
      done(null);
    },
  };
}

export type PublishPipeline = ReturnType<typeof createPublishPipeline>;

/** Delivery to one subscriber: the packet as it goes out, or null when it is withheld. */
export function createDeliverPipeline(stages: readonly DeliverStage[]) {
  const list = [...stages];
  return {
    stages: list as readonly DeliverStage[],
    run<P extends DeliverPacket>(session: BrokerSession, packet: P): P | null {
      let current: P | null = packet;
      for (const stage of list) {
        current = stage.run(session, current);
        if (current === null) return null;
      }
      return current;
    },
  };
}

/** Subscribe authorization: the reason the first stage refuses the filter, or undefined. */
export function createSubscribePipeline(stages: readonly SubscribeStage[]) {
  const list = [...stages];
  return {
    stages: list as readonly SubscribeStage[],
    run(session: BrokerSession, request: SubscribeRequest): string | undefined {
      for (const stage of list) {
        const reason = stage.run(session, request);
        if (reason !== undefined) return reason;
      }
      return undefined;
    },
  };
}
