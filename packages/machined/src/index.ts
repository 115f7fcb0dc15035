export {
  busLabelEscape,
  busLabelUnescape,
  imageObjectPath,
  MACHINE1_PATH,
  machineObjectPath,
  nameFromObjectPath,
} from './bus-label.js';
