import { EventEmitter } from 'node:events';
import { type ChildProcess, type ExitStatus, SIG } from '@sd/sys';
import { NspawnError } from '../errors.js';
import type { NotifyFields } from '../notify/notify.js';
import type { SettingsPaths } from '../settings/load.js';
import type { Settings } from '../settings/settings.js';

/** A running container as its caller sees it (startContainer in container.ts makes it). */

export interface ContainerOptions {
  /** Where runtime state goes (locks, staging dirs); systemd's is /run/systemd. */
  runtimeDir?: string;
  /** The payload's stdio in pipe mode; ours by default. */
  stdio?: [number, number, number];
  /** runContainer: called with each container it starts (again after every reboot of a booted guest). */
  onContainer?: (container: Container) => void;
  /** The settings the caller named explicitly (from parseArgv): a .nspawn file does not override them. */
  explicit?: ReadonlySet<keyof Settings>;
  /** Where trusted .nspawn files are looked up (/etc/systemd/nspawn, /run/systemd/nspawn). */
  settingsPaths?: SettingsPaths;
  /** Where -M NAME without -D/-i looks for the image (the machine image search path). */
  imageSearchPath?: readonly string[];
  /** Receives notices such as ignored settings of an untrusted .nspawn file. */
  logger?: { warn(message: string): void };
  /**
   * How long (ms) the start may block the event loop for each answer of
   * its setup processes (a few ms at most each) before waiting through the
   * poller: a round trip through the poller's thread costs more. Without a
   * console to forward, the start also waits that long for a payload that
   * ends at once, serving its notify socket meanwhile (a signal ends the
   * wait). For a caller with nothing else to do meanwhile, as sd-nspawn's
   * CLI; default 0.
   */
  briefWaitMs?: number;
}

export interface ContainerEvents {
  started: [pid: number];
  /** The payload sent READY=1 over the notify socket (a booted systemd: the boot is done). */
  ready: [];
  /** The payload's STATUS= text. */
  status: [text: string];
  /** Every notification from the payload, as VAR=VALUE fields. */
  notify: [fields: NotifyFields];
  exit: [status: ExitStatus];
}

const SIGRTMIN_3 = SIG.RTMIN + 3;

/**
 * A running container: one payload (or booted init) in its own namespaces.
 * Emits 'started' and 'exit'; `exited` resolves with the payload's status
 * once everything the container made is gone again.
 */
export class Container extends EventEmitter<ContainerEvents> {
  readonly machine: string;
  readonly uuid: string;
  readonly settings: Settings;
  private child: ChildProcess | undefined;
  private readonly cleanups: Array<() => void | Promise<void>> = [];
  private stopRequested = false;
  private readySeen = false;
  private readonly readyPromise: Promise<void>;

  constructor(settings: Settings, machine: string, uuid: string) {
    super();
    this.settings = settings;
    this.machine = machine;
    this.uuid = uuid;
    this.readyPromise = new Promise<void>((resolve, reject) => {
      let ready = false;
      this.once(settings.notifyReady ? 'ready' : 'started', () => {
        ready = true;
        resolve();
      });
      // No error (and its stack) made at every exit of a container that was ready.
      this.once('exit', (st) => {
        if (!ready)
          reject(new NspawnError('ECHILD', `The container exited before it was ready (${describeExit(st)})`));
      });
    });
    this.readyPromise.catch(() => {});
  }

  /**
   * Resolves when the container counts as up, as systemd-nspawn tells its
   * own supervisor: on the payload's READY=1 with --notify-ready=yes, as soon
   * as it runs otherwise. Rejects if it exits first.
   */
  whenReady(): Promise<void> {
    return this.readyPromise;
  }

  /** @internal A notification from the payload. */
  handleNotify(fields: NotifyFields): void {
    this.emit('notify', fields);
    if (fields.STATUS !== undefined) this.emit('status', fields.STATUS);
    if (fields.READY === '1' && !this.readySeen) {
      this.readySeen = true;
      this.emit('ready');
    }
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /**
   * Stops the payload: --kill-signal, else SIGRTMIN+3 (an orderly halt) for a booted init, else
   * SIGKILL, as systemd-nspawn does (a plain PID 1 ignores SIGTERM, and nothing would end it).
   */
  stop(): void {
    this.stopRequested = true;
    const sig = this.settings.killSignal ?? (this.settings.boot ? SIGRTMIN_3 : SIG.KILL);
    this.child?.kill(sig);
  }

  /** Kills the payload outright. */
  kill(signal: number = SIG.KILL): void {
    this.child?.kill(signal);
  }

  /** @internal */
  addCleanup(fn: () => void | Promise<void>): void {
    this.cleanups.push(fn);
  }

  /** @internal */
  setChild(child: ChildProcess | undefined): void {
    this.child = child;
  }

  get stopping(): boolean {
    return this.stopRequested;
  }

  /** Undoes everything in reverse order; safe to call twice. */
  async cleanup(): Promise<void> {
    while (this.cleanups.length) {
      try {
        await this.cleanups.pop()!();
      } catch {}
    }
  }
}

export function describeExit(st: ExitStatus): string {
  return st.signal !== null ? `killed by signal ${st.signal}` : `status ${st.code}`;
}
