/**
 * The doctor's per-slot checks on the master: host.env, etcd reachable, its version, the member mapping, the data dir, the marker.
 */
import { judgeJoin, parseEtcdVersion } from '../etcd-version';
import { type Ctx, type Slot, type Verdict, fail, onHost, pass, reconcileCmd, skip, tagArg, terminateCmd, warn } from './rules';

/** Why the host was not asked, or null when it was. */
export function notAsked(c: Ctx, s: Slot): string | null {
  if (!s.instanceId) return 'no InService master';
  if (!s.host?.status) return `not asked: the SSM agent on ${s.instanceId} is ${c.f.instances[s.instanceId]?.agent ?? 'not registered'}`;
  return null;
}

/** The peer URL etcd lists for the slot's member when it is claimed without the host's own word (recorded ID or name). */
export function listedPeerUrls(c: Ctx, s: Slot): string[] | null {
  const claim = c.claims[s.member];
  if (!claim || claim.basis === 'peer-url') return null;
  return c.f.etcd.members.find((m) => m.id === claim.id)?.peerUrls ?? null;
}

export function hostEnv(c: Ctx, s: Slot): Verdict {
  const why = notAsked(c, s);
  if (why) return skip(why);
  const st = s.host!.status!;
  const file = `/etc/quorum-keeper/host.env on ${s.instanceId}`;
  if (!st.ok) return fail(`${s.instanceId}: ${st.error}`, `fix ${file} (keys and values: docs/host-scripts.md#environment-and-hostenv); the host scripts read it, never source it`);
  const listed = listedPeerUrls(c, s);
  if (listed && listed.length && !listed.includes(st.peerUrl)) {
    return fail(`${s.instanceId} advertises ${st.peerUrl} (from host.env) but etcd lists ${s.member}'s member at ${listed.join(',')}: host.env is missing (defaults used) or not this master's`,
      `write ${file} with this master's QK_HOST_IP, QK_ETCD_SCHEME, QK_ETCD_PEER_PORT, QK_ETCD_CLIENT_PORT and TLS paths (docs/host-scripts.md#environment-and-hostenv), so that it advertises the URL etcd knows`);
  }
  return pass(`${s.instanceId}: peer ${st.peerUrl}, client ${st.clientUrl}`);
}

export function etcdReachable(c: Ctx, s: Slot): Verdict {
  const e = c.f.etcd;
  if (e.members.length === 0) return skip('etcd did not answer (see the cluster-wide check)');
  const claim = c.claims[s.member];
  if (!claim) return skip('no etcd member is this slot\'s (see the mapping check)');
  const m = e.members.find((x) => x.id === claim.id)!;
  const answered = e.statuses.find((x) => x.memberId === claim.id);
  if (!answered) {
    const err = e.unreachable.find((u) => m.clientUrls.includes(u.endpoint))?.error;
    return fail(`member ${m.name || m.id} (${m.id}) did not answer at ${m.clientUrls.join(',') || 'any client URL (never started)'}${err ? `: ${err}` : ''}`,
      s.instanceId ? `on ${s.instanceId}: systemctl status etcd; journalctl -u etcd. If it does not come back, let the ASG replace the master: ${terminateCmd(s.instanceId)}` : `quorum-keeper status --cluster ${c.f.cluster}`);
  }
  const st = s.host?.status;
  if (st?.ok && st.running && !st.healthy) {
    return fail(`${m.name || m.id} answers the other masters, but not this master's own client (the TLS files in its host.env) at ${st.clientUrl}`,
      `check QK_ETCD_CACERT and QK_ETCD_CLIENT_CERT/QK_ETCD_CLIENT_KEY (else QK_ETCD_CERT/QK_ETCD_KEY) in /etc/quorum-keeper/host.env on ${s.instanceId}: the files must exist and be issued by the etcd CA`);
  }
  return pass(`${m.name || m.id} answers at ${answered.endpoint}${st?.ok ? (st.healthy ? ', healthy to its own master' : '') : ''}`);
}

export function etcdVersion(c: Ctx, s: Slot): Verdict {
  const why = notAsked(c, s);
  if (why) return skip(why);
  const st = s.host!.status!;
  if (!st.ok) return skip('host.env invalid: not asked');
  const clusterVersion = c.f.etcd.clusterVersion ?? st.clusterVersion;
  const v = judgeJoin(st.etcdVersion, clusterVersion);
  const claim = c.claims[s.member];
  const running = claim ? c.f.etcd.statuses.find((x) => x.memberId === claim.id)?.version ?? null : st.serverVersion;
  if (!v.ok && v.kind !== 'unknown') {
    return fail(`${s.instanceId}: ${v.detail}`, `launch ${s.member}'s masters from an AMI with etcd ${clusterVersion ?? 'the cluster\'s version'} (or one minor above): update the launch template of ${s.asg.name}`);
  }
  if (!v.ok) return warn(v.detail, `install etcd on ${s.instanceId}'s AMI where the host scripts find it (QK_BIN_DIR or PATH): etcd --version must answer`);
  if (running && parseEtcdVersion(running) && running !== st.etcdVersion) {
    return warn(`${s.member} runs etcd ${running} but ${s.instanceId}'s binary is ${st.etcdVersion}: restarted, it would run the binary`,
      `finish the change: replace the master (${terminateCmd(s.instanceId!)}) or restart etcd on it`);
  }
  return pass(`etcd ${st.etcdVersion}${running ? ` (running ${running})` : ''} in a cluster at ${clusterVersion ?? 'unknown'}`);
}

export function memberMapping(c: Ctx, s: Slot): Verdict {
  const e = c.f.etcd;
  if (e.members.length === 0) return skip('etcd did not answer');
  const claim = c.claims[s.member];
  const byId = (id: string | undefined) => (id ? e.members.find((m) => m.id === id) : undefined);
  const peerUrl = s.host?.status?.ok ? s.host.status.peerUrl : undefined;
  const inspected = s.host?.inspect?.ok ? s.host.inspect : null;
  const candidates = new Map<string, string[]>();
  const add = (id: string | undefined, basis: string) => {
    if (id && byId(id)) candidates.set(id, [...(candidates.get(id) ?? []), basis]);
  };
  add(c.f.recordedIds?.[s.member], 'recorded ID');
  for (const m of e.members.filter((x) => x.name === s.member)) add(m.id, 'name');
  if (peerUrl) for (const m of e.members.filter((x) => x.peerUrls.includes(peerUrl))) add(m.id, 'peer URL');
  if (inspected?.marker?.memberId) add(inspected.marker.memberId, 'volume marker');
  const desc = (id: string) => `${byId(id)?.name || '(unstarted)'} ${id} (by ${candidates.get(id)!.join(', ')})`;
  if (candidates.size > 1) {
    return fail(`${s.member} has ${candidates.size} candidate members: ${[...candidates.keys()].map(desc).join(' vs ')}`,
      `decide which member is ${s.member}'s (the volume marker names the data's), then remove the other once it no longer answers: etcdctl member remove <id> — never while it answers`);
  }
  if (!claim) {
    return fail(`no etcd member is ${s.member}'s: none recorded, none named ${s.member}${peerUrl ? `, none at ${peerUrl}` : ''}`,
      `if the member was removed, the reconciler adds it back (${reconcileCmd(c.f.cluster)}; quorum-keeper plan shows the repair); if its etcd name differs from the tag, its master's peer URL must be the member's (check host.env)`);
  }
  return pass(`${desc(claim.id)}`);
}

export function dataDir(c: Ctx, s: Slot): Verdict {
  const why = notAsked(c, s);
  if (why) return skip(why);
  if (s.host!.status && !s.host!.status.ok) return skip('host.env invalid: not inspected');
  if (s.volumes.length !== 1) return skip('not exactly one volume to look for');
  const i = s.host!.inspect;
  const v = s.volumes[0]!;
  if (!i) return skip('not inspected');
  if (!i.ok) return fail(`etcd-mount.sh --inspect on ${s.instanceId}: ${i.error}`, `run it by hand to see more: ${onHost(s.instanceId!, `bash etcd-mount.sh --inspect --volume-id ${v.volumeId} --cluster ${c.f.cluster} --member ${s.member}`)}`);
  const repair = `${reconcileCmd(c.f.cluster)} repairs an InService master (attach, mount, restart etcd); or let the ASG replace it: ${terminateCmd(s.instanceId!)}`;
  if (!i.device) {
    return fail(`${v.volumeId} has no device on ${s.instanceId} (${v.attachedTo ? `attached to ${v.attachedTo}` : v.state}): etcd's data is not on the member's volume`, repair);
  }
  if (!i.onVolume) {
    return fail(`${i.dataDir} is not on ${v.volumeId} (${i.device}): ${i.mountPoint} ${i.mountedDevice ? `holds ${i.mountedDevice}` : 'is the root disk\'s own directory'}`, repair);
  }
  if (!i.hasData) return warn(`${i.dataDir} on ${v.volumeId} holds no etcd data`, `if etcd should run there, ${repair}`);
  return pass(`${i.dataDir} on ${v.volumeId} (${i.device})`);
}

export function marker(c: Ctx, s: Slot): Verdict {
  const why = notAsked(c, s);
  if (why) return skip(why);
  const i = s.host!.inspect;
  if (!i?.ok || !i.onVolume || s.volumes.length !== 1) return skip('the volume is not mounted (see the data dir check)');
  const v = s.volumes[0]!;
  const { cluster } = c.f;
  const args = `--volume-id ${v.volumeId} --cluster ${cluster} --member ${s.member}`;
  const claim = c.claims[s.member];
  const record = (id: string) => onHost(s.instanceId!, `bash etcd-mount.sh --record-member-id ${id} ${args}`);
  const m = i.marker;
  if (!m) {
    return fail(`${v.volumeId} has no .quorum-keeper-volume marker: etcd's boot guard will not start etcd on it, and a replacement refuses its data`,
      `quorum-keeper adopt --cluster ${cluster} --state-table <StateTableName> writes it (--dry-run first); by hand: ${onHost(s.instanceId!, `bash etcd-mount.sh --adopt ${args}`)}${claim ? `; then ${record(claim.id)}` : ''}`);
  }
  if (m.cluster !== cluster || m.member !== s.member) {
    return fail(`${v.volumeId}'s marker names ${m.cluster}/${m.member}, not ${cluster}/${s.member}: the volume is another member's`, `find ${s.member}'s own volume and tag it; retag ${v.volumeId} for ${m.cluster}/${m.member} (aws ec2 create-tags --resources ${v.volumeId} --tags ${tagArg(c.f.tags.member, m.member)})`);
  }
  if (m.volume && m.volume !== v.volumeId) {
    return fail(`${v.volumeId}'s marker names volume ${m.volume}: it is a copy (an EBS snapshot restored with the same tags), which must never run as ${s.member}`,
      `untag the copy (aws ec2 delete-tags --resources ${v.volumeId} --tags Key=${c.f.tags.member}) and attach ${m.volume}, ${s.member}'s real volume`);
  }
  const recorded = c.f.recordedIds?.[s.member];
  if (m.memberId && recorded && m.memberId !== recorded) {
    return fail(`${v.volumeId}'s marker says member ${m.memberId}, the state table ${recorded}: a replacement refuses this volume until they agree`,
      claim ? `the member running on it is ${claim.id}: ${record(claim.id)}, then ${reconcileCmd(cluster)} records it in the table` : `quorum-keeper status --cluster ${cluster}; then record the right ID: ${record('<member ID>')}`);
  }
  if (m.memberId && claim && m.memberId !== claim.id) {
    return fail(`${v.volumeId}'s marker says member ${m.memberId} but ${s.member} is member ${claim.id} in etcd`, record(claim.id));
  }
  if (!m.memberId) return warn(`${v.volumeId}'s marker records no member ID: the slot's identity does not survive a lost state table`, record(claim?.id ?? '<member ID>'));
  return pass(`${m.cluster}/${m.member} on ${m.volume || v.volumeId}, member ${m.memberId}`);
}

/**
 * The boot guard: etcd's unit starts only when the verified volume is mounted with its marker
 * (etcd-member.sh). Without it, a master rebooted with its volume missing would start etcd on the
 * bare mount point and rejoin under its member ID with an empty log (forgotten votes).
 */
export function bootGuard(c: Ctx, s: Slot): Verdict {
  const why = notAsked(c, s);
  if (why) return skip(why);
  const st = s.host!.status!;
  if (!st.ok) return skip('host.env invalid: not asked');
  if (st.guard === undefined) return skip(`${s.instanceId}'s host scripts do not report the guard (older than this Quorum Keeper)`);
  if (st.guard === 'none') {
    return warn(`${s.instanceId}: etcd's unit has no boot guard: after a reboot with its volume missing, etcd would start on the bare mount point`,
      `quorum-keeper adopt --cluster ${c.f.cluster} installs it on an adopted master (the guard alone); a replacement or repair installs the full one`);
  }
  return pass(`${s.instanceId}: ${st.guard === 'full' ? 'Quorum Keeper\'s drop-in' : 'the guard alone (adopted; etcd\'s unit is the AMI\'s)'}`);
}
