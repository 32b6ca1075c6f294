import type { CertificateInfo } from './certificate.ts';
import { CommandRefusal, type CommandHandler } from './commands.ts';
import type { InstalledFirmware } from './ab-installer.ts';
import { AGENT_NAME, AGENT_VERSION } from './version.ts';

/** The names of the agent's built-in commands (an `--exec` or a handler of the same name replaces one). */
export const BUILTIN_COMMANDS = ['ping', 'report-state', 'reboot'] as const;

/** What the built-ins read from the running agent. */
export interface AgentView {
  readonly deviceId: () => string;
  /** Epoch ms. */
  readonly now: () => number;
  readonly startedAt: number;
  readonly certificate: () => CertificateInfo;
  /** When the current MQTT session started, epoch ms; null while disconnected. */
  readonly connectedSince: () => number | null;
  /** What the firmware agent says runs, when the agent handles firmware. */
  readonly firmware?: (() => Promise<InstalledFirmware>) | undefined;
  /** Restarts the device (the `reboot` command); it runs once the result has been sent. */
  readonly reboot?: (() => void | Promise<void>) | undefined;
}

/** What `report-state` answers. */
export interface AgentState {
  readonly deviceId: string;
  readonly agent: string;
  readonly agentVersion: string;
  /** Null when the agent does not handle firmware updates. */
  readonly firmware: {
    readonly version: string | null;
    readonly securityVersion: number;
    readonly target: string | null;
  } | null;
  readonly certificate: {
    readonly serialNumber: string;
    readonly notBefore: number;
    readonly notAfter: number;
  };
  readonly uptimeS: number;
  /** Epoch ms. */
  readonly startedAt: number;
  readonly connectedSince: number | null;
}

const uptimeS = (view: AgentView) => Math.max(0, Math.floor((view.now() - view.startedAt) / 1000));

/**
 * `ping` → `{ pong: true, ts, uptimeS }`; `report-state` → {@link AgentState}; `reboot` → `{ rebooting: true }`,
 * then the reboot hook, or refused "reboot not configured on this device" without one.
 */
export function builtinCommands(view: AgentView): Record<(typeof BUILTIN_COMMANDS)[number], CommandHandler> {
  return {
    ping: () => ({ pong: true, ts: view.now(), uptimeS: uptimeS(view) }),
    'report-state': async (): Promise<AgentState> => {
      const certificate = view.certificate();
      const installed = await view.firmware?.();
      return {
        deviceId: view.deviceId(),
        agent: AGENT_NAME,
        agentVersion: AGENT_VERSION,
        firmware:
          installed === undefined
            ? null
            : {
                version: installed.version,
                securityVersion: installed.securityVersion,
                target: installed.target,
              },
        certificate: {
          serialNumber: certificate.serialNumber,
          notBefore: certificate.notBefore,
          notAfter: certificate.notAfter,
        },
        uptimeS: uptimeS(view),
        startedAt: view.startedAt,
        connectedSince: view.connectedSince(),
      };
    },
    reboot: (_request, context) => {
      const { reboot } = view;
      if (reboot === undefined) throw new CommandRefusal('reboot not configured on this device');
      context.afterResult(reboot);
      return { rebooting: true };
    },
  };
}
