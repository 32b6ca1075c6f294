/**
 * Bulwark device SDK: enroll a device over EST (RFC 7030) with a key generated on the device, keep
 * its identity on disk, and run the agent that connects to the broker over mutual TLS, publishes
 * heartbeats, renews the certificate and answers commands (`devices/{id}/commands/{name}`).
 *
 * @example
 * ```ts
 * import { enrollDevice, startAgent } from '@bulwark/device';
 *
 * await enrollDevice({ serverUrl: 'https://bulwark.example:8443', deviceId: 'pump-17', token, dir, caFingerprint });
 * const agent = await startAgent({
 *   dir,
 *   heartbeatIntervalMs: 30_000,
 *   // Besides the built-ins ping, report-state and reboot (with `reboot: () => …`).
 *   commands: { 'set-speed': async (request) => ({ rpm: await pump.setSpeed(Number(request.data)) }) },
 * });
 * agent.on('heartbeat', (beat) => console.log(beat.seq));
 * agent.onCommand('blink', async () => led.blink()); // resolve: ok; throw: failed
 * await agent.reportTamper('enclosure-opened', 'lid switch'); // signed with the device key (JWS)
 * ```
 *
 * TPM 2.0 remote attestation (tpm2-tools): `await attest({ dir, tpm: createTpm({ tcti }) })`, or
 * `startAgent({ …, attestation: { tpm, everyMs } })` to attest on a schedule.
 *
 * @packageDocumentation
 */
export { startAgent } from './agent.ts';
export type { Agent, AgentEvent, AgentEvents, AgentOptions, Clock, DisconnectReason } from './agent.ts';
export { CommandRefusal, createCommandRouter } from './commands.ts';
export type {
  CommandContext,
  CommandHandler,
  CommandOutcome,
  CommandRouter,
  CommandRouterOptions,
} from './commands.ts';
export { BUILTIN_COMMANDS, builtinCommands } from './builtin-commands.ts';
export type { AgentState, AgentView } from './builtin-commands.ts';
export { EXEC_MAX_RUNTIME_MS, EXEC_OUTPUT_MAX_BYTES, execCommandHandler } from './exec-command.ts';
export type { ExecHandlerOptions } from './exec-command.ts';
export { backoffDelay, createBackoff, defaultBackoff } from './backoff.ts';
export type { Backoff, BackoffOptions } from './backoff.ts';
export { certificateInfo, fingerprintOf, normalizeFingerprint } from './certificate.ts';
export type { CertificateInfo } from './certificate.ts';
export { parseDuration } from './duration.ts';
export { enrollDevice } from './enroll.ts';
export type { EnrollOptions, EnrollResult } from './enroll.ts';
export { getCaCerts, simpleEnroll, simpleReenroll } from './est-client.ts';
export type {
  CaCertificates,
  EstCallOptions,
  GetCaCertsOptions,
  SimpleEnrollRequest,
  SimpleReenrollRequest,
} from './est-client.ts';
export { buildHeartbeat } from './heartbeat.ts';
export type { HeartbeatInput } from './heartbeat.ts';
export { openIdentityStore } from './identity-store.ts';
export type { Credentials, DeviceIdentity, IdentityMetadata, IdentityStore } from './identity-store.ts';
export { createCsr, generateDeviceKey, isKeyType, keyTypeOf, keyTypes } from './keys.ts';
export type { Csr, DeviceKey, KeyType } from './keys.ts';
export { DEFAULT_RENEW_THRESHOLD, renewIdentity, renewalDue } from './renewal.ts';
export type { RenewOptions } from './renewal.ts';
export { MQTTS_DEFAULT_PORT, defaultMqttUrl, parseMqttUrl, parseServerUrl } from './urls.ts';
export { AGENT_NAME, AGENT_VERSION } from './version.ts';
export { createAbInstaller } from './ab-installer.ts';
export type { AbInstallerOptions, FirmwareImage, Installer, InstalledFirmware } from './ab-installer.ts';
export { classifyTufError, createFirmwareUpdater } from './firmware-updater.ts';
export type { FirmwareUpdater, FirmwareUpdaterOptions, UpdateResult } from './firmware-updater.ts';
export { createFirmwareAgent } from './firmware-agent.ts';
export type { AgentFirmwareOptions, FirmwareAgent } from './firmware-agent.ts';
export { MtlsFetcher } from './tuf-fetcher.ts';
export type { MtlsFetcherOptions } from './tuf-fetcher.ts';
export {
  ATTESTATION_STATE_FILE,
  attest,
  describeVerdict,
  forgetAttestationState,
  scheduleAttestation,
} from './attest.ts';
export type {
  AttestationResultView,
  AttestationState,
  AttestOptions,
  AttestOutcome,
  AttestSchedule,
  AttestScheduleOptions,
} from './attest.ts';
export {
  akAlgorithms,
  createTpm,
  credentialFile,
  DEFAULT_AK_HANDLE,
  DEFAULT_EK_HANDLE,
  DEFAULT_TCTI,
  parsePcrRead,
  parseTpmHandle,
} from './tpm.ts';
export type { AkAlgorithm, CredentialBlobs, Tpm, TpmKeys, TpmOptions, TpmQuote } from './tpm.ts';
export {
  createSecurityReporter,
  openReportSequence,
  REPORT_SEQUENCE_FILE,
  reportHealth,
  reportTamper,
  sendSecurityReport,
  signerOf,
  signSecurityReport,
} from './security-reports.ts';
export type {
  HealthInput,
  ReportContext,
  ReportSequence,
  ReportSigner,
  SecurityReporter,
  SecurityReporterDeps,
  SendReportOptions,
  TamperInput,
} from './security-reports.ts';
