/** Where things are on a master, as the host scripts and the flows both assume. */

/** The device name the etcd volume is attached as (NVMe instances show it under /dev/disk/by-id). */
export const ETCD_DEVICE = '/dev/xvdf';

/** kube-apiserver's secure port: the load balancer's target port. */
export const APISERVER_PORT = 6443;

/** The host scripts' exit codes that callers act on (host/lib.sh, docs/host-scripts.md). */
export const HOST_EXIT = {
  /** The volume belongs to another cluster or member, or holds data without a marker. */
  owner: 4,
  /** The volume is a copy of another member volume (its marker names that one). */
  copy: 7,
} as const;
