import { splitSignature } from './signature.js';
import type { InterfaceSpec } from './types.js';

const esc = (s: string): string =>
  s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');

const STANDARD = `  <interface name="org.freedesktop.DBus.Peer">
    <method name="Ping"/>
    <method name="GetMachineId"><arg type="s" name="machine_uuid" direction="out"/></method>
  </interface>
  <interface name="org.freedesktop.DBus.Introspectable">
    <method name="Introspect"><arg name="xml_data" type="s" direction="out"/></method>
  </interface>
  <interface name="org.freedesktop.DBus.Properties">
    <method name="Get">
      <arg name="interface_name" direction="in" type="s"/>
      <arg name="property_name" direction="in" type="s"/>
      <arg name="value" direction="out" type="v"/>
    </method>
    <method name="GetAll">
      <arg name="interface_name" direction="in" type="s"/>
      <arg name="props" direction="out" type="a{sv}"/>
    </method>
    <method name="Set">
      <arg name="interface_name" direction="in" type="s"/>
      <arg name="property_name" direction="in" type="s"/>
      <arg name="value" direction="in" type="v"/>
    </method>
    <signal name="PropertiesChanged">
      <arg type="s" name="interface_name"/>
      <arg type="a{sv}" name="changed_properties"/>
      <arg type="as" name="invalidated_properties"/>
    </signal>
  </interface>
`;

function args(sig: string | undefined, names: readonly string[] | undefined, dir?: 'in' | 'out'): string {
  return splitSignature(sig ?? '')
    .map((t, i) => {
      const name = names?.[i] !== undefined ? ` name="${esc(names[i]!)}"` : '';
      return `<arg type="${esc(t)}"${name}${dir ? ` direction="${dir}"` : ''}/>`;
    })
    .join('');
}

/** The introspection XML of one object: its interfaces (plus the standard ones) and child nodes. */
export function introspectXml(interfaces: readonly InterfaceSpec[], children: readonly string[]): string {
  let xml =
    '<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"\n' +
    ' "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">\n<node>\n';
  if (interfaces.length) xml += STANDARD;
  for (const iface of interfaces) {
    xml += ` <interface name="${esc(iface.name)}">\n`;
    for (const [name, m] of Object.entries(iface.methods ?? {}))
      xml += `  <method name="${esc(name)}">${args(m.in, m.inNames, 'in')}${args(m.out, m.outNames, 'out')}</method>\n`;
    for (const [name, s] of Object.entries(iface.signals ?? {}))
      xml += `  <signal name="${esc(name)}">${args(s.type, s.names)}</signal>\n`;
    for (const [name, p] of Object.entries(iface.properties ?? {})) {
      const note = p.emitsChanged
        ? `<annotation name="org.freedesktop.DBus.Property.EmitsChangedSignal" value="${p.emitsChanged}"/>`
        : '';
      xml += `  <property name="${esc(name)}" type="${esc(p.type)}" access="read">${note}</property>\n`;
    }
    xml += ' </interface>\n';
  }
  for (const c of children) xml += ` <node name="${esc(c)}"/>\n`;
  return `${xml}</node>\n`;
}
