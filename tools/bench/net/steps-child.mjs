// One start of tools/bench/net/steps.ts --cold, in plain node on the built packages (dist): the
// modules a CLI start loads, and no more (run under tsx, the loader itself had loaded node:net,
// child_process and others, hiding what the network's first use of them costs).
//
//   SD_STEPS_NETNS=/proc/PID/ns/net node steps-child.mjs '["ROOTFS", ...nspawn args]'
import { onNetworkStep } from '@sd/networkd-veth';
import { parseArgv, startContainer } from '@sd/nspawn';
import { CLONE, closeQuietly, O, open, setns } from '@sd/sys';

const [rootfs, ...args] = JSON.parse(process.argv[2] ?? '[]');
const { settings, explicit } = parseArgv([
  '-q',
  '--register=no',
  '-D',
  rootfs,
  '-M',
  'sdnet-steps',
  ...args,
  '/bin/true',
]);
const marks = [];
onNetworkStep((s, at) => marks.push([s, at]));
const target = open(process.env.SD_STEPS_NETNS, O.RDONLY | O.CLOEXEC);
setns(target, CLONE.NEWNET);
closeQuietly(target);
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const c0 = cpu();
const t0 = performance.now();
const { exited } = await startContainer(settings, { explicit, stdio: [0, 1, 2] });
const exec = performance.now() - t0;
const used = cpu() - c0;
await exited;
const r = { marks: marks.map(([s, at]) => [s, at - t0]), exec, cpu: used };
process.stdout.write(`STEPS ${JSON.stringify(r)}\n`);
process.exit(0);
