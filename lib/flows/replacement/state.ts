/** What the replacement's steps share: its input, and what earlier steps found. */
import type { MemberVolume } from '../../aws/ec2';
import type { HookRef } from '../../aws/lifecycle';
import type { MemberList } from '../../etcd';
import type { Peer } from '../cluster-masters';
import type { FlowDeps } from '../deps';
import type { MasterSlot } from '../master-slot';

export interface ReplacementState {
  readonly deps: FlowDeps;
  readonly slot: MasterSlot;
  readonly instanceId: string;
  readonly hook: HookRef | null;
  az?: string;
  volume?: MemberVolume;
  /** Dry run only: whether the SSM agent answered (later plans read the host only if so). */
  agentOnline?: boolean;
  /** The mount's answer; `memberId`: the member ID the volume's marker records (null: none yet). */
  mounted?: { hasData: boolean; formatted: boolean; device: string; memberId?: string | null };
  /** This host's URLs, and the version of the etcd its AMI carries (null: not reported). */
  urls?: { peerUrl: string; clientUrl: string; etcdVersion?: string | null };
  peer?: Peer;
  /** The peer step looked for a member for its whole timeout (the cluster is formed) and none answered. */
  peerWaited?: boolean;
  /** The slots whose masters the last peer search asked. */
  peerCandidates?: string[];
  /** This master seeds a new cluster (it won the bootstrap fence). */
  seed?: boolean;
  /** etcd's cluster ID, once read after the member caught up. */
  clusterId?: string;
  /** Dry run only: the member list the peer read and whether it saw a leader and quorum (nothing has changed yet). */
  seen?: { list: MemberList; quorumOk: boolean };
  /** The membership change made: in-place | update | replace. */
  membership?: string;
  /** The member list after the membership step (the run only). */
  after?: MemberList;
  /** Why the flow ended at once without touching anything (the instance is not one to bring in). */
  ignored?: string;
}
