import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  firmwareCommandSchema,
  tufPaths,
  type FirmwareCommand,
  type FirmwareFailureReason,
  type FirmwareState,
  type FirmwareStatus,
  type FirmwareStep,
} from '@bulwark/protocol';
import { Updater } from 'tuf-js';
import type { FirmwareImage, Installer } from './ab-installer.ts';
import { MtlsFetcher } from './tuf-fetcher.ts';

export interface FirmwareUpdaterOptions {
  /** Directory for TUF metadata (`tuf/`) and downloads; the installer keeps its own. */
  readonly dir: string;
  /** The Bulwark server, https://host:port. */
  readonly serverUrl: string;
  /** Mutual TLS to the repository: the device's key, certificate and the CA chain from enrollment. */
  readonly tls: { readonly ca: string; readonly key: string; readonly cert: string };
  /** This device's hardware/model id; a target must list it. */
  readonly hardwareId: string;
  readonly installer: Installer;
  /**
   * The TUF root to trust first (JSON), provisioned with the device image. Without it, the first update
   * fetches `1.root.json` over the mutually authenticated TLS connection (trust anchored in the enrollment CA).
   */
  readonly trustedRoot?: string | undefined;
  /** Receives every step, in order. */
  readonly report?: ((status: FirmwareStatus) => void | Promise<void>) | undefined;
  readonly now?: (() => number) | undefined;
}

export type UpdateResult =
  /** `image` is absent when the target was already installed. */
  | { readonly ok: true; readonly image?: FirmwareImage | undefined }
  | { readonly ok: false; readonly reason: FirmwareFailureReason; readonly detail: string };

/** A device-side firmware updater. */
export interface FirmwareUpdater {
  /** Verifies and installs the target a command names; never throws, reports `failed(reason)` instead. */
  update(command: FirmwareCommand): Promise<UpdateResult>;
  /** What to publish on `devices/{id}/firmware/state`. */
  state(): Promise<FirmwareState>;
}

class Refusal extends Error {
  constructor(
    readonly reason: FirmwareFailureReason,
    message: string,
  ) {
    super(message);
  }
}

/** Maps tuf-js and @tufjs/models errors to the reason reported to the server. */
export function classifyTufError(err: unknown, phase: 'metadata' | 'target'): FirmwareFailureReason {
  const e = err as Error;
  const name = e?.constructor?.name ?? '';
  const text = `${name} ${e?.message ?? String(err)}`;
  if (
    phase === 'target' &&
    /LengthOrHashMismatch|DownloadLengthMismatch|Expected (hash|length)|Max length/.test(text)
  )
    return 'artifact_modified';
  if (/DownloadHTTPError|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|socket hang up|no response/.test(text))
    return 'download_failed';
  if (/Expired|expired/.test(text)) return 'metadata_expired';
  if (/UnsignedMetadata|was signed by|signature/i.test(text)) return 'metadata_signature_invalid';
  if (/BadVersion|less than current version|Expected version|rolling back/i.test(text))
    return 'metadata_rollback';
  if (phase === 'target') return 'download_failed';
  return 'metadata_invalid';
}

function imageFrom(
  target: string,
  info: { length: number; hashes: Record<string, string>; custom: Record<string, unknown> },
) {
  const c = info.custom;
  const sha256 = info.hashes.sha256;
  if (typeof sha256 !== 'string') throw new Refusal('metadata_invalid', `target ${target} has no SHA-256`);
  return {
    image: {
      target,
      version: typeof c.version === 'string' ? c.version : '',
      securityVersion: typeof c.securityVersion === 'number' ? c.securityVersion : -1,
      sha256,
      length: info.length,
    } satisfies FirmwareImage,
    hardwareIds: Array.isArray(c.hardwareIds)
      ? c.hardwareIds.filter((h): h is string => typeof h === 'string')
      : [],
  };
}

/**
 * The device's updater, an independent TUF client (tuf-js `Updater`): it verifies root, timestamp, snapshot
 * and targets metadata (signatures, thresholds, versions, expiry), checks that the target is listed, fits
 * this hardware and does not lower the security version, downloads it with length and hash checks, and
 * installs through the installer. Any refusal leaves the running image untouched.
 *
 * @example
 * ```ts
 * const updater = createFirmwareUpdater({ dir, serverUrl, tls, hardwareId: 'pump-v2', installer });
 * const result = await updater.update({ type: 'install', target: 'pump-fw/1.4.0/pump-fw-1.4.0.bin' });
 * ```
 */
export function createFirmwareUpdater(options: FirmwareUpdaterOptions): FirmwareUpdater {
  const now = options.now ?? Date.now;
  const metadataDir = join(options.dir, 'tuf', 'metadata');
  const downloadDir = join(options.dir, 'tuf', 'downloads');
  const base = options.serverUrl.replace(/\/+$/, '');
  const fetcher = new MtlsFetcher(options.tls);
  let busy = false;

  async function ensureRoot(): Promise<void> {
    await mkdir(metadataDir, { recursive: true, mode: 0o700 });
    if (existsSync(join(metadataDir, 'root.json'))) return;
    let root = options.trustedRoot;
    if (root === undefined) {
      try {
        root = (await fetcher.downloadBytes(`${base}${tufPaths.metadata}1.root.json`, 512 * 1024)).toString(
          'utf8',
        );
      } catch (err) {
        throw new Refusal(
          classifyTufError(err, 'metadata'),
          `cannot fetch the initial TUF root: ${(err as Error).message}`,
        );
      }
    }
    await writeFile(join(metadataDir, 'root.json'), root, { mode: 0o600 });
  }

  return {
    async state() {
      const current = await options.installer.current();
      return {
        hardwareId: options.hardwareId,
        target: current.target,
        version: current.version,
        securityVersion: current.securityVersion,
        ts: now(),
      };
    },

    async update(command) {
      const parsed = firmwareCommandSchema.safeParse(command);
      const target = parsed.success ? parsed.data.target : 'invalid';
      const step = async (s: FirmwareStep, extra: Partial<FirmwareStatus> = {}) => {
        await options.report?.({
          step: s,
          target,
          ...(command.rolloutId ? { rolloutId: command.rolloutId } : {}),
          ...(command.attempt ? { attempt: command.attempt } : {}),
          ts: now(),
          ...extra,
        });
      };
      if (!parsed.success) {
        await step('failed', {
          reason: 'target_not_signed',
          detail: 'the command names no valid target path',
        });
        return { ok: false, reason: 'target_not_signed', detail: 'invalid command' };
      }
      if (busy) {
        await step('failed', { reason: 'busy', detail: 'another update is running' });
        return { ok: false, reason: 'busy', detail: 'another update is running' };
      }
      busy = true;
      await mkdir(downloadDir, { recursive: true, mode: 0o700 });
      const download = join(downloadDir, encodeURIComponent(target));
      try {
        await step('available');
        if ((await options.installer.current()).target === target) {
          await step('succeeded', { detail: 'already installed' });
          return { ok: true };
        }
        await ensureRoot();
        const updater = new Updater({
          metadataDir,
          metadataBaseUrl: `${base}${tufPaths.metadata}`,
          targetDir: downloadDir,
          targetBaseUrl: `${base}${tufPaths.targets}`,
          fetcher,
        });
        let info;
        try {
          await updater.refresh();
          info = await updater.getTargetInfo(target);
        } catch (err) {
          throw new Refusal(classifyTufError(err, 'metadata'), (err as Error).message);
        }
        if (!info) throw new Refusal('target_not_signed', `${target} is not in the signed targets metadata`);
        const { image, hardwareIds } = imageFrom(target, info);
        if (!hardwareIds.includes(options.hardwareId))
          throw new Refusal(
            'hardware_mismatch',
            `${target} is for ${hardwareIds.join(', ') || 'no hardware'}, not ${options.hardwareId}`,
          );
        const current = await options.installer.current();
        const floor = Math.max(current.securityVersion, current.securityFloor);
        if (image.securityVersion < floor)
          throw new Refusal(
            'security_version_lower',
            `${target} has security version ${image.securityVersion}, lower than the installed ${floor}`,
          );
        await step('downloading');
        try {
          await updater.downloadTarget(info, download);
        } catch (err) {
          throw new Refusal(classifyTufError(err, 'target'), (err as Error).message);
        }
        await step('verifying'); // tuf-js checked length and hashes; the installer re-checks what it writes
        await step('installing');
        try {
          await options.installer.install(download, image);
        } catch (err) {
          throw new Refusal('install_failed', (err as Error).message);
        }
        await step('rebooting');
        const booted = await options.installer.activate();
        if (!booted.ok) throw new Refusal('boot_check_failed', booted.detail);
        await step('succeeded');
        return { ok: true, image };
      } catch (err) {
        const reason = err instanceof Refusal ? err.reason : 'internal';
        const detail = ((err as Error).message ?? String(err)).slice(0, 500);
        await step('failed', { reason, detail });
        return { ok: false, reason, detail };
      } finally {
        busy = false;
        await rm(download, { force: true });
        // tuf-js leaves nothing else behind, but a crash mid-download might have.
        for (const name of await readdir(downloadDir).catch(() => [] as string[]))
          await rm(join(downloadDir, name), { force: true, recursive: true });
      }
    },
  };
}
