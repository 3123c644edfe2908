/// SQL for what the `hosts` and `host_groups` tables mean, written once for
/// every service that asks: when a host is online, and when it belongs to a
/// group. `h` is the alias of a `hosts` row, `g` of a `host_groups` row.
public enum HostSQL {
  /// True when the host's last batch is within three of its intervals.
  public static let online =
    "coalesce(h.last_seen_at > now() - make_interval(secs => h.interval_ms * 3 / 1000.0), false)"

  /// True when host `h` is in group `g`: an explicit member, or its labels
  /// contain the group's (non-empty) selector.
  public static let inGroup = """
    (EXISTS (SELECT 1 FROM host_group_members m WHERE m.group_name = g.name AND m.host = h.name)
      OR (g.selector <> '{}'::jsonb AND h.labels @> g.selector))
    """
}
