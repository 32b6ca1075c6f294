import { readFile } from 'node:fs/promises';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { deviceIdProblem, tamperReasons, type TamperReason } from '@bulwark/protocol';
import { startAgent, type Agent } from './agent.ts';
import { attest, describeVerdict, scheduleAttestation, type AttestOutcome } from './attest.ts';
import { BUILTIN_COMMANDS } from './builtin-commands.ts';
import type { CommandHandler } from './commands.ts';
import { checkExecutable, execCommandHandler, parseExecMapping, runRebootCommand } from './exec-command.ts';
import type { AgentFirmwareOptions } from './firmware-agent.ts';
import { normalizeFingerprint } from './certificate.ts';
import { parseDuration } from './duration.ts';
import { enrollDevice, ROOT_FINGERPRINT_COMMAND } from './enroll.ts';
import { keyTypes, type KeyType } from './keys.ts';
import { describeReport, locationOf, parseOnOff, sendSecurityReport } from './security-reports.ts';
import {
  akAlgorithms,
  createTpm,
  DEFAULT_AK_HANDLE,
  DEFAULT_EK_HANDLE,
  parseTpmHandle,
  type AkAlgorithm,
} from './tpm.ts';
import { parseMqttUrl, parseServerUrl } from './urls.ts';
import { AGENT_VERSION } from './version.ts';

/** Where the CLI writes, and what stops `run`; tests pass their own. */
export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Stops `run`. Default: SIGINT or SIGTERM. */
  readonly stopSignal?: AbortSignal;
}

const processIo: CliIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

interface EnrollFlags {
  server: string;
  token: string;
  id: string;
  dir: string;
  ca?: string;
  caFingerprint?: string;
  trustOnFirstUse?: boolean;
  keyType: KeyType;
  mqtt?: string;
  force?: boolean;
}

interface ExecMapping {
  name: string;
  path: string;
}

interface RunFlags {
  dir: string;
  mqtt?: string;
  heartbeatInterval: number;
  verbose?: boolean;
  hardwareId?: string;
  firmwareVersion?: string;
  securityVersion?: number;
  tufRoot?: string;
  exec?: ExecMapping[];
  rebootCommand?: string;
  tcti?: string;
  attestEvery: number;
}

/**
 * Runs `bulwark-agent` with `argv` (without `node` and the script) and returns the exit code:
 * 0 on success, 1 with a one-line `error: …` on stderr otherwise.
 *
 * @example
 * ```ts
 * process.exitCode = await main(process.argv.slice(2));
 * ```
 */
/** One line of output: newlines inside a message are folded so every message is one line. */
function line(write: (text: string) => void, text: string): void {
  write(`${text.replace(/\s*\n\s*/g, ' ')}\n`);
}

export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const program = new Command('bulwark-agent')
    .description('Bulwark device agent: enroll this device, then keep it connected and its certificate fresh')
    .version(AGENT_VERSION)
    .exitOverride()
    .configureOutput({
      writeOut: io.stdout,
      writeErr: io.stderr,
      outputError: (text, write) => line(write, text.trim()),
    });

  enrollCommand(program, io);
  runCommand(program, io);
  attestCommand(program, io);
  reportCommand(program, io);

  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    // Help and --version arrive here too, with exit code 0.
    if (err instanceof CommanderError) return err.exitCode;
    line(io.stderr, `error: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}

/** `bulwark-agent enroll`: a key made here, a certificate by EST with a one-time token. */
function enrollCommand(program: Command, io: CliIo): void {
  program
    .command('enroll')
    .description('generate a key on this device and obtain its certificate with a one-time token (EST)')
    .requiredOption('--server <url>', 'Bulwark EST server, https://host[:port]', argument(parseServerUrl))
    .requiredOption('--token <token>', 'one-time enrollment token for this device', argument(nonEmpty))
    .requiredOption('--id <device-id>', 'device id, as registered on the server', argument(deviceId))
    .requiredOption(
      '--dir <dir>',
      'identity directory to create (key.pem, cert.pem, ca.pem, identity.json)',
      argument(nonEmpty),
    )
    .option('--ca <file>', 'PEM CA chain to trust (from "bulwark pki ca-chain" on the server)')
    .option(
      '--ca-fingerprint <hex>',
      'fetch the CA chain from the server and enroll only if its root has this SHA-256 fingerprint',
      argument(fingerprint),
    )
    .option(
      '--trust-on-first-use',
      'without --ca or --ca-fingerprint, trust the CA root the server presents (unsafe: a machine in the middle could take the token)',
    )
    .addOption(new Option('--key-type <type>', 'key algorithm').choices(keyTypes).default('ec-p256'))
    .option(
      '--mqtt <url>',
      'broker URL to remember, mqtts://host:port (default: server host, port 8883)',
      argument(parseMqttUrl),
    )
    .option('--force', 'replace an identity already in --dir')
    .action(async (flags: EnrollFlags) => {
      const ca = flags.ca === undefined ? undefined : await readCaFile(flags.ca);
      const result = await enrollDevice({
        serverUrl: flags.server,
        deviceId: flags.id,
        token: flags.token,
        dir: flags.dir,
        ca,
        caFingerprint: flags.caFingerprint,
        trustOnFirstUse: flags.trustOnFirstUse,
        keyType: flags.keyType,
        mqttUrl: flags.mqtt,
        force: flags.force,
        onTrustOnFirstUse: (root) => {
          line(io.stderr, `CA root from server: ${root.subject}`);
          line(io.stderr, `CA root SHA-256 fingerprint: ${root.fingerprint}`);
          line(
            io.stderr,
            'warning: trusted on first use (--trust-on-first-use); compare this fingerprint with ' +
              `"${ROOT_FINGERPRINT_COMMAND}" on the Bulwark server`,
          );
        },
      });
      line(
        io.stdout,
        `enrolled ${result.deviceId}: certificate ${result.certificate.serialNumber} valid until ` +
          `${new Date(result.certificate.notAfter).toISOString()}, identity saved in ${result.dir}`,
      );
    });
}

/** `bulwark-agent run`: connected, heartbeats, renewal, firmware updates, commands until stopped. */
function runCommand(program: Command, io: CliIo): void {
  program
    .command('run')
    .description(
      'connect to the broker, publish heartbeats, renew the certificate before it expires and answer commands',
    )
    .requiredOption('--dir <dir>', 'identity directory written by "enroll"', argument(nonEmpty))
    .option(
      '--mqtt <url>',
      'broker URL, mqtts://host:port (default: from enroll, else server host, port 8883)',
      argument(parseMqttUrl),
    )
    .addOption(
      new Option('--heartbeat-interval <duration>', 'time between heartbeats, e.g. 30s, 5m')
        .argParser(argument(parseDuration))
        .default(30_000, '30s'),
    )
    .option('--verbose', 'also print every heartbeat')
    .option(
      '--hardware-id <id>',
      'accept firmware updates for this hardware/model id (TUF-verified, installed to A/B slots in --dir/firmware)',
      argument(nonEmpty),
    )
    .option('--firmware-version <semver>', 'version of the factory image (before the first update)')
    .option(
      '--security-version <n>',
      'security version of the factory image (anti-rollback floor)',
      argument((text) => {
        const n = Number(text);
        if (!Number.isInteger(n) || n < 0) throw new Error('must be a whole number of 0 or more');
        return n;
      }),
    )
    .option(
      '--tuf-root <file>',
      'TUF root.json provisioned with the device (default: fetched at first update)',
    )
    .option(
      '--exec <name=path>',
      'answer command NAME by running PATH (no shell): the command data as JSON on stdin, ' +
        'BULWARK_COMMAND_ID/NAME in its environment; stdout is the result, exit 0 = ok, else failed ' +
        `with stderr's last line; killed at the command's expiry (5 min at most). Repeatable; ` +
        `may replace any built-in (${BUILTIN_COMMANDS.join(', ')})`,
      collectExec,
    )
    .option(
      '--reboot-command <cmd>',
      'what the "reboot" command runs, after answering (program and arguments split on spaces, no shell); ' +
        'without it "reboot" is refused',
      argument(nonEmpty),
    )
    .option(
      '--tcti <tcti>',
      'attest with this TPM (tpm2-tools TCTI, e.g. device:/dev/tpmrm0) now and every --attest-every',
      argument(nonEmpty),
    )
    .addOption(
      new Option('--attest-every <duration>', 'time between two attestations (with --tcti)')
        .argParser(argument(parseDuration))
        .default(3_600_000, '1h'),
    )
    .action(async (flags: RunFlags) => {
      const agent = await startAgent({
        attestation:
          flags.tcti === undefined
            ? undefined
            : { tpm: createTpm({ tcti: flags.tcti }), everyMs: flags.attestEvery },
        dir: flags.dir,
        mqttUrl: flags.mqtt,
        heartbeatIntervalMs: flags.heartbeatInterval,
        firmware: await firmwareOptions(flags),
        commands: await execHandlers(flags.exec),
        reboot: rebootHook(flags.rebootCommand),
      });
      report(agent, io, flags.verbose === true);
      line(io.stdout, `bulwark-agent ${AGENT_VERSION} running as ${agent.deviceId}, broker ${agent.mqttUrl}`);
      await stopRequested(io.stopSignal);
      await agent.stop();
      line(io.stdout, 'stopped');
    });
}

interface AttestFlags {
  dir: string;
  tcti?: string;
  every?: number;
  ekHandle: number;
  akHandle: number;
  akAlgorithm: AkAlgorithm;
  json?: boolean;
}

/** `bulwark-agent attest`: TPM 2.0 remote attestation, once or on a schedule. */
function attestCommand(program: Command, io: CliIo): void {
  program
    .command('attest')
    .description(
      "prove this device's boot state with its TPM 2.0: register the TPM once (credential activation), " +
        'then quote the PCRs the server asks for over its fresh nonce. Prints the verdict; exit 1 when ' +
        'contraindicated',
    )
    .requiredOption(
      '--dir <dir>',
      'identity directory written by "enroll" (attestation.json is kept there)',
      argument(nonEmpty),
    )
    .option(
      '--tcti <tcti>',
      'tpm2-tools TCTI, e.g. swtpm:host=127.0.0.1,port=2321 (default: $TPM2TOOLS_TCTI, else device:/dev/tpmrm0)',
      argument(nonEmpty),
    )
    .option(
      '--every <duration>',
      'attest now, then at this interval until stopped (e.g. 1h)',
      argument(parseDuration),
    )
    .addOption(
      new Option('--ek-handle <handle>', 'persistent handle of the endorsement key')
        .argParser(argument(parseTpmHandle))
        .default(DEFAULT_EK_HANDLE, '0x81010001'),
    )
    .addOption(
      new Option('--ak-handle <handle>', 'persistent handle of the attestation key')
        .argParser(argument(parseTpmHandle))
        .default(DEFAULT_AK_HANDLE, '0x81010002'),
    )
    .addOption(
      new Option('--ak-algorithm <type>', 'attestation key type, when it is created')
        .choices(akAlgorithms)
        .default('ecc'),
    )
    .option('--json', 'print each verdict as JSON')
    .action(async (flags: AttestFlags) => {
      const tpm = createTpm({
        tcti: flags.tcti,
        ekHandle: flags.ekHandle,
        akHandle: flags.akHandle,
        akAlgorithm: flags.akAlgorithm,
      });
      const print = (outcome: AttestOutcome) =>
        line(io.stdout, flags.json ? JSON.stringify(outcome.result) : describeVerdict(outcome));
      if (flags.every === undefined) {
        const outcome = await attest({ dir: flags.dir, tpm });
        print(outcome);
        if (outcome.result.tier === 'contraindicated')
          throw new Error(`attestation contraindicated: ${outcome.result.reason}`);
        return;
      }
      const schedule = scheduleAttestation({
        dir: flags.dir,
        tpm,
        everyMs: flags.every,
        onResult: print,
        onError: (err) => line(io.stderr, `warning: attestation failed: ${err.message}`),
      });
      await stopRequested(io.stopSignal);
      await schedule.stop();
    });
}

interface ReportFlags {
  dir: string;
  mqtt?: string;
  lat?: number;
  lon?: number;
  json?: boolean;
}

/** `bulwark-agent report tamper|health`: one signed report over MQTT, then exit. */
function reportCommand(program: Command, io: CliIo): void {
  const report = program
    .command('report')
    .description(
      'sign a security report with the device key, publish it (QoS 1) with the device identity and exit',
    );
  const common = (command: Command) =>
    command
      .requiredOption(
        '--dir <dir>',
        'identity directory written by "enroll" (security-seq.json is kept there)',
        argument(nonEmpty),
      )
      .option('--mqtt <url>', 'broker URL, mqtts://host:port (default: from enroll)', argument(parseMqttUrl))
      .option('--lat <degrees>', 'latitude where the device is, -90..90 (with --lon)', argument(finiteNumber))
      .option(
        '--lon <degrees>',
        'longitude where the device is, -180..180 (with --lat)',
        argument(finiteNumber),
      )
      .option('--json', 'print the report sent as JSON');
  const send = async (flags: ReportFlags, body: Parameters<typeof sendSecurityReport>[0]['report']) => {
    const sent = await sendSecurityReport({ dir: flags.dir, mqttUrl: flags.mqtt, report: body });
    line(io.stdout, flags.json ? JSON.stringify(sent) : describeReport(sent));
  };
  common(
    report
      .command('tamper')
      .description('report a physical or boot integrity event (devices/{id}/security/tamper)'),
  )
    .addOption(new Option('--reason <reason>', 'what happened').choices(tamperReasons).makeOptionMandatory())
    .option('--detail <text>', 'what the device knows about it (at most 512 characters)')
    .action((flags: ReportFlags & { reason: TamperReason; detail?: string }) =>
      send(flags, {
        kind: 'tamper',
        reason: flags.reason,
        detail: flags.detail,
        location: locationOf(flags),
      }),
    );
  common(
    report
      .command('health')
      .description("report the device's physical and boot state (devices/{id}/security/health)"),
  )
    .option('--secure-boot <on|off>', 'whether secure boot is enforced', argument(parseOnOff))
    .option(
      '--debug-port <on|off>',
      'whether a debug port (JTAG, SWD, serial console) is enabled',
      argument(parseOnOff),
    )
    .addOption(
      new Option('--enclosure <state>', 'whether the enclosure is closed').choices(['open', 'closed']),
    )
    .option('--boot-count <n>', 'boots since manufacture', argument(wholeNumber))
    .option('--last-boot-reason <reason>', 'why the device last rebooted (power-on, watchdog, update, …)')
    .action((flags: ReportFlags & HealthFlags) => send(flags, { kind: 'health', health: healthOf(flags) }));
}

interface HealthFlags {
  secureBoot?: boolean;
  debugPort?: boolean;
  enclosure?: 'open' | 'closed';
  bootCount?: number;
  lastBootReason?: string;
}

function healthOf(flags: ReportFlags & HealthFlags) {
  return {
    secureBoot: flags.secureBoot,
    debugPortEnabled: flags.debugPort,
    enclosureClosed: flags.enclosure === undefined ? undefined : flags.enclosure === 'closed',
    bootCount: flags.bootCount,
    lastBootReason: flags.lastBootReason,
    location: locationOf(flags),
  };
}

function finiteNumber(text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n)) throw new Error('must be a number');
  return n;
}

function wholeNumber(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new Error('must be a whole number of 0 or more');
  return n;
}

/** Firmware updates when the device names its hardware id. */
async function firmwareOptions(flags: RunFlags): Promise<AgentFirmwareOptions | undefined> {
  if (flags.hardwareId === undefined) return undefined;
  return {
    hardwareId: flags.hardwareId,
    factory: { version: flags.firmwareVersion ?? '0.0.0', securityVersion: flags.securityVersion ?? 0 },
    trustedRoot: flags.tufRoot === undefined ? undefined : await readFile(flags.tufRoot, 'utf8'),
  };
}

/** `--exec NAME=PATH`, repeatable; a name given twice is an error. */
function collectExec(text: string, previous: ExecMapping[] | undefined): ExecMapping[] {
  const mapping = argument(parseExecMapping)(text);
  if (previous?.some(({ name }) => name === mapping.name))
    throw new InvalidArgumentError(`command ${mapping.name} is mapped twice`);
  return [...(previous ?? []), mapping];
}

/** The `--exec` handlers, once each program is known to be executable. */
async function execHandlers(exec: readonly ExecMapping[] = []): Promise<Record<string, CommandHandler>> {
  const handlers: Record<string, CommandHandler> = {};
  for (const { name, path } of exec) {
    try {
      await checkExecutable(path);
    } catch (err) {
      throw new Error(`--exec ${name}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    handlers[name] = execCommandHandler(path);
  }
  return handlers;
}

function rebootHook(command: string | undefined): (() => Promise<void>) | undefined {
  if (command === undefined) return undefined;
  return () => runRebootCommand(command);
}

/** One line per agent event (heartbeats with --verbose). */
function report(agent: Agent, io: CliIo, verbose: boolean): void {
  agent.on('firmware', (status) =>
    line(
      io.stdout,
      `firmware ${status.target}: ${status.step}${status.reason === undefined ? '' : ` (${status.reason}${status.detail ? `: ${status.detail}` : ''})`}`,
    ),
  );
  agent.on('connected', ({ url, clientId }) => line(io.stdout, `connected to ${url} as ${clientId}`));
  agent.on('disconnected', ({ reason, error }) =>
    line(io.stdout, `disconnected (${reason})${error === undefined ? '' : `: ${error.message}`}`),
  );
  agent.on('reconnecting', ({ attempt, delayMs }) =>
    line(io.stdout, `reconnecting in ${(delayMs / 1000).toFixed(1)} s (attempt ${attempt})`),
  );
  agent.on('renewed', ({ certificate }) =>
    line(io.stdout, `certificate renewed, valid until ${new Date(certificate.notAfter).toISOString()}`),
  );
  agent.on('command', ({ id, name, status, message, repeated }) =>
    line(
      io.stdout,
      `command ${name} ${id}: ${status}${message === undefined ? '' : ` (${message})`}${repeated ? ' (repeated)' : ''}`,
    ),
  );
  agent.on('attestation', (outcome) => line(io.stdout, describeVerdict(outcome)));
  agent.on('error', (err) => line(io.stderr, `warning: ${err.message}`));
  if (verbose) agent.on('heartbeat', (beat) => line(io.stdout, `heartbeat ${JSON.stringify(beat)}`));
}

/** Adapts a validator that throws (our BulwarkErrors) to commander's argument parser. */
function argument<T>(parse: (text: string) => T): (text: string) => T {
  return (text) => {
    try {
      return parse(text);
    } catch (err) {
      throw new InvalidArgumentError(err instanceof Error ? err.message : String(err));
    }
  };
}

function nonEmpty(text: string): string {
  if (text.trim() === '') throw new Error('must not be empty');
  return text;
}

function deviceId(text: string): string {
  const problem = deviceIdProblem(text);
  if (problem !== undefined) throw new Error(problem);
  return text;
}

function fingerprint(text: string): string {
  const normalized = normalizeFingerprint(text);
  if (normalized === undefined)
    throw new Error('expected a SHA-256 fingerprint: 64 hex digits, colons optional');
  return normalized;
}

async function readCaFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read --ca file: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
}

function stopRequested(signal: AbortSignal | undefined): Promise<void> {
  if (signal !== undefined) {
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
  }
  return new Promise((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
