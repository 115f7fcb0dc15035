import { check, lazyFunc } from '../ffi/libc.js';

// The kernel's struct termios as TCGETS/TCSETS use it (asm-generic/termbits.h,
// the same on x86_64 and aarch64): four u32 flag words, c_line, c_cc[19].
// Not glibc's struct termios, which has 32 cc bytes and speed fields.
const NCCS = 19;
const TERMIOS_SIZE = 36;

export const TCGETS = 0x5401;
export const TCSETS = 0x5402;
export const TCSETSW = 0x5403;
export const TCSETSF = 0x5404;
export const TIOCGWINSZ = 0x5413;
export const TIOCSWINSZ = 0x5414;

/** c_iflag bits. */
export const IFLAG = {
  IGNBRK: 0o1,
  BRKINT: 0o2,
  IGNPAR: 0o4,
  PARMRK: 0o10,
  INPCK: 0o20,
  ISTRIP: 0o40,
  INLCR: 0o100,
  IGNCR: 0o200,
  ICRNL: 0o400,
  IXON: 0o2000,
  IXANY: 0o4000,
  IXOFF: 0o10000,
  IUTF8: 0o40000,
} as const;
/** c_oflag bits. */
export const OFLAG = { OPOST: 0o1, ONLCR: 0o4 } as const;
/** c_cflag bits. */
export const CFLAG = {
  CSIZE: 0o60,
  CS8: 0o60,
  CSTOPB: 0o100,
  CREAD: 0o200,
  PARENB: 0o400,
  HUPCL: 0o2000,
} as const;
/** c_lflag bits. */
export const LFLAG = {
  ISIG: 0o1,
  ICANON: 0o2,
  ECHO: 0o10,
  ECHOE: 0o20,
  ECHOK: 0o40,
  ECHONL: 0o100,
  NOFLSH: 0o200,
  TOSTOP: 0o400,
  IEXTEN: 0o100000,
} as const;
/** Indexes into c_cc. */
export const VCC = {
  VINTR: 0,
  VQUIT: 1,
  VERASE: 2,
  VKILL: 3,
  VEOF: 4,
  VTIME: 5,
  VMIN: 6,
  VSUSP: 10,
} as const;

export interface Termios {
  iflag: number;
  oflag: number;
  cflag: number;
  lflag: number;
  line: number;
  cc: Uint8Array;
}

export interface WindowSize {
  rows: number;
  cols: number;
  xpixel?: number;
  ypixel?: number;
}

const c = {
  ioctl: lazyFunc('ioctl', 'int', ['int', 'unsigned long', 'uint8_t *']),
};

export function decodeTermios(b: Buffer): Termios {
  return {
    iflag: b.readUInt32LE(0),
    oflag: b.readUInt32LE(4),
    cflag: b.readUInt32LE(8),
    lflag: b.readUInt32LE(12),
    line: b.readUInt8(16),
    cc: Uint8Array.from(b.subarray(17, 17 + NCCS)),
  };
}

export function encodeTermios(t: Termios): Buffer {
  const b = Buffer.alloc(TERMIOS_SIZE);
  b.writeUInt32LE(t.iflag >>> 0, 0);
  b.writeUInt32LE(t.oflag >>> 0, 4);
  b.writeUInt32LE(t.cflag >>> 0, 8);
  b.writeUInt32LE(t.lflag >>> 0, 12);
  b.writeUInt8(t.line, 16);
  b.set(t.cc.subarray(0, NCCS), 17);
  return b;
}

/** The terminal settings of a tty fd (TCGETS). */
export function getTermios(fd: number): Termios {
  const b = Buffer.alloc(TERMIOS_SIZE);
  check('ioctl(TCGETS)', c.ioctl(fd, TCGETS, b));
  return decodeTermios(b);
}

/** Applies settings: `now` (TCSETS), after output `drain`s (TCSETSW), or `flush` pending input too (TCSETSF). */
export function setTermios(fd: number, t: Termios, when: 'now' | 'drain' | 'flush' = 'now'): void {
  const req = when === 'now' ? TCSETS : when === 'drain' ? TCSETSW : TCSETSF;
  check('ioctl(TCSETS)', c.ioctl(fd, req, encodeTermios(t)));
}

/** The settings cfmakeraw(3) makes: no line editing, echo, signals or output processing; 8-bit bytes one at a time. */
export function makeRaw(t: Termios): Termios {
  const cc = Uint8Array.from(t.cc);
  cc[VCC.VMIN] = 1;
  cc[VCC.VTIME] = 0;
  return {
    iflag:
      t.iflag &
      ~(
        IFLAG.IGNBRK |
        IFLAG.BRKINT |
        IFLAG.PARMRK |
        IFLAG.ISTRIP |
        IFLAG.INLCR |
        IFLAG.IGNCR |
        IFLAG.ICRNL |
        IFLAG.IXON
      ),
    oflag: t.oflag & ~OFLAG.OPOST,
    cflag: (t.cflag & ~(CFLAG.CSIZE | CFLAG.PARENB)) | CFLAG.CS8,
    lflag: t.lflag & ~(LFLAG.ECHO | LFLAG.ECHONL | LFLAG.ICANON | LFLAG.ISIG | LFLAG.IEXTEN),
    line: t.line,
    cc,
  };
}

/** The window size of a tty (TIOCGWINSZ). */
export function getWindowSize(fd: number): Required<WindowSize> {
  const b = Buffer.alloc(8);
  check('ioctl(TIOCGWINSZ)', c.ioctl(fd, TIOCGWINSZ, b));
  return {
    rows: b.readUInt16LE(0),
    cols: b.readUInt16LE(2),
    xpixel: b.readUInt16LE(4),
    ypixel: b.readUInt16LE(6),
  };
}

/** Sets the window size (TIOCSWINSZ); the foreground process group gets SIGWINCH. */
export function setWindowSize(fd: number, size: WindowSize): void {
  const b = Buffer.alloc(8);
  b.writeUInt16LE(size.rows, 0);
  b.writeUInt16LE(size.cols, 2);
  b.writeUInt16LE(size.xpixel ?? 0, 4);
  b.writeUInt16LE(size.ypixel ?? 0, 6);
  check('ioctl(TIOCSWINSZ)', c.ioctl(fd, TIOCSWINSZ, b));
}
