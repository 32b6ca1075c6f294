/**
 * The cluster bus: what one broker node tells the others (issue 19; Redis comes with scale-out). A message
 * accepted on one node is routed on every other node to its own subscribers (each node's deliver hook still
 * decides per subscriber), and a client that connects on one node takes its session over on the others
 * [MQTT-3.1.4-3]. A single node needs nothing from it: `createLocalBus()` is that node's bus. Nodes in one
 * process (tests, or several cores behind one listener) share an `InProcessHub`.
 */
import type { CoreContext } from './context.ts';
import { RC } from './reason-codes.ts';
import type { CoreMessage } from './types.ts';

export interface ClusterHandlers {
  /** A message accepted on another node: route it here. */
  message(message: CoreMessage): void;
  /** A client connected on another node with this session key: end its connection here. */
  claim(sessionKey: string): void;
}

export interface ClusterBus {
  readonly nodeId: string;
  /** A message this node accepted (a PUBLISH, a will, the server's own): for the other nodes. */
  publish(message: CoreMessage): void;
  /** A client connected here with this session key: the other nodes end theirs. */
  claim(sessionKey: string): void;
  /** What the other nodes send; returns the unsubscribe. */
  subscribe(handlers: ClusterHandlers): () => void;
}

/** The bus of a single node: there is no other node to tell. */
export function createLocalBus(nodeId = 'local'): ClusterBus {
  return {
    nodeId,
    publish: () => undefined,
    claim: () => undefined,
    subscribe: () => () => undefined,
  };
}

/** Nodes in one process: each node's bus delivers to every other node's handlers, never back to its own. */
export class InProcessHub {
  private readonly nodes = new Map<string, ClusterHandlers>();

  bus(nodeId: string): ClusterBus {
    const { nodes } = this;
    const others = function* () {
      for (const [id, handlers] of nodes) if (id !== nodeId) yield handlers;
    };
    return {
      nodeId,
      publish(message) {
        for (const handlers of others()) handlers.message(message);
      },
      claim(sessionKey) {
        for (const handlers of others()) handlers.claim(sessionKey);
      },
      subscribe(handlers) {
        if (nodes.has(nodeId)) throw new Error(`node ${nodeId} is already on this hub`);
        nodes.set(nodeId, handlers);
        return () => void nodes.delete(nodeId);
      },
    };
  }
}

/**
 * Joins a core to its bus: messages from other nodes are routed here as the core's own (`route`), and a
 * claim ends the live connection of that session key with DISCONNECT 0x8E on MQTT 5, as a takeover on one
 * node does.
 */
export function joinBus<S>(
  ctx: CoreContext<S>,
  bus: ClusterBus,
  route: (message: CoreMessage) => void,
): () => void {
  return bus.subscribe({
    message: (message) => route(message),
    claim(sessionKey) {
      const conn = ctx.live.get(sessionKey);
      if (!conn) return;
      if (conn.session !== undefined) ctx.hooks.sessionTakenOver?.(conn.session);
      const disconnect =
        conn.protocolVersion === 5
          ? { cmd: 'disconnect' as const, reasonCode: RC.sessionTakenOver }
          : undefined;
      conn.end(disconnect, { reason: 'taken over on another node', reasonCode: RC.sessionTakenOver });
    },
  });
}
