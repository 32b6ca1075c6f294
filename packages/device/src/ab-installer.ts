import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic-write.ts';

/** What a firmware image is, as the signed TUF targets metadata describes it. */
export interface FirmwareImage {
  /** TUF target path, e.g. `pump-fw/1.4.0/pump-fw-1.4.0.bin`. */
  readonly target: string;
  readonly version: string;
  readonly securityVersion: number;
  readonly sha256: string;
  readonly length: number;
}

/** What the device runs now; `target` is null for the factory image. */
export interface InstalledFirmware {
  readonly target: string | null;
  readonly version: string | null;
  readonly securityVersion: number;
  /**
   * The anti-rollback floor: the highest security version ever committed on this device. A device never
   * installs an image below it, even if the active slot was changed by hand.
   */
  readonly securityFloor: number;
}

/**
 * Installs verified images. The updater calls `install` with a file whose length and hashes TUF has
 * verified, then `activate`; an installer for real hardware writes a flash partition and sets the
 * bootloader's try-once flag instead of files.
 */
export interface Installer {
  current(): Promise<InstalledFirmware>;
  /** Writes the image to the inactive slot and verifies what was written; does not switch. */
  install(file: string, image: FirmwareImage): Promise<void>;
  /** Boots the new slot once; commits it if the boot check passes, else rolls back to the previous slot. */
  activate(): Promise<{ ok: true } | { ok: false; detail: string }>;
}

type Slot = 'a' | 'b';

interface SlotState {
  active: Slot;
  /** Set while booting the other slot on trial; a restart that finds it set rolls back. */
  trial: Slot | null;
  slots: Record<Slot, FirmwareImage | null>;
  securityFloor: number;
}

export interface AbInstallerOptions {
  /** Directory for `slot-a.img`, `slot-b.img` and `slots.json`. */
  readonly dir: string;
  /** What the device shipped with (used until the first update). */
  readonly factory?: { readonly version: string; readonly securityVersion: number } | undefined;
  /**
   * The boot check: on hardware, the new image's own self-test after reboot. Default: the slot holds the
   * expected bytes. Return a reason to fail it.
   */
  readonly bootCheck?: ((image: FirmwareImage, slotFile: string) => Promise<string | undefined>) | undefined;
}

const other = (slot: Slot): Slot => (slot === 'a' ? 'b' : 'a');

async function sha256Of(file: string): Promise<{ sha256: string; length: number }> {
  const hash = createHash('sha256');
  let length = 0;
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer);
    length += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), length };
}

/**
 * The default installer: two image slots in a directory, A/B style. The inactive slot is written and
 * verified while the active one keeps running; the switch is one atomic write of `slots.json`, and only
 * after the boot check passed. Interrupted at any point, the device comes back on a complete image.
 *
 * @example
 * ```ts
 * const installer = createAbInstaller({ dir: '/var/lib/bulwark/firmware', factory: { version: '1.0.0', securityVersion: 1 } });
 * console.log((await installer.current()).version);
 * ```
 */
export function createAbInstaller(options: AbInstallerOptions): Installer {
  const stateFile = join(options.dir, 'slots.json');
  const slotFile = (slot: Slot) => join(options.dir, `slot-${slot}.img`);
  const factory = options.factory ?? { version: null, securityVersion: 0 };

  async function load(): Promise<SlotState> {
    await mkdir(options.dir, { recursive: true, mode: 0o700 });
    let state: SlotState;
    try {
      state = JSON.parse(await readFile(stateFile, 'utf8')) as SlotState;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return {
        active: 'a',
        trial: null,
        slots: { a: null, b: null },
        securityFloor: factory.securityVersion,
      };
    }
    if (state.trial !== null) {
      // Restarted during a trial boot without a commit: the previous slot stays active.
      state = { ...state, trial: null };
      await save(state);
    }
    return state;
  }

  const save = (state: SlotState) => writeFileAtomic(stateFile, JSON.stringify(state, null, 2), 0o600);

  return {
    async current() {
      const state = await load();
      const image = state.slots[state.active];
      return image
        ? {
            target: image.target,
            version: image.version,
            securityVersion: image.securityVersion,
            securityFloor: state.securityFloor,
          }
        : {
            target: null,
            version: factory.version,
            securityVersion: factory.securityVersion,
            securityFloor: state.securityFloor,
          };
    },

    async install(file, image) {
      const state = await load();
      const slot = other(state.active);
      const destination = slotFile(slot);
      const staging = `${destination}.part`;
      await copyFile(file, staging);
      const handle = await open(staging, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
      // Read back what landed on the slot: a bad write must never become bootable.
      const written = await sha256Of(staging);
      if (written.sha256 !== image.sha256 || written.length !== image.length) {
        await rm(staging, { force: true });
        throw new Error(`slot ${slot} does not verify after writing`);
      }
      await rename(staging, destination);
      await save({ ...state, slots: { ...state.slots, [slot]: image } });
    },

    async activate() {
      const state = await load();
      const slot = other(state.active);
      const image = state.slots[slot];
      if (!image) return { ok: false, detail: `slot ${slot} holds no image` };
      await save({ ...state, trial: slot });
      const check = options.bootCheck ?? defaultBootCheck;
      let problem: string | undefined;
      try {
        problem = await check(image, slotFile(slot));
      } catch (err) {
        problem = (err as Error).message;
      }
      if (problem !== undefined) {
        await save({ ...state, trial: null });
        return {
          ok: false,
          detail: `boot check failed on slot ${slot}: ${problem}; slot ${state.active} is active again`,
        };
      }
      await save({
        ...state,
        active: slot,
        trial: null,
        securityFloor: Math.max(state.securityFloor, image.securityVersion),
      });
      return { ok: true };
    },
  };
}

async function defaultBootCheck(image: FirmwareImage, file: string): Promise<string | undefined> {
  const { sha256 } = await sha256Of(file);
  return sha256 === image.sha256 ? undefined : 'the slot does not hold the expected image';
}
