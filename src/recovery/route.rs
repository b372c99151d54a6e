//! Which partitions an event is appended to, and which one a connection
//! receives it from (`docs/recovery.md`, "Positions"): once, from the
//! lowest partition among the target keys it matches, live and on replay
//! alike.

use crate::adapter::Target;

use super::position::partition_of;

/// The partitions `target`'s keys are in (rooms and ids among
/// `partitions`; everyone is `partitions` itself), sorted, each once.
pub(crate) fn partitions_of(target: &Target, partitions: u16) -> Vec<u16> {
    if target.is_everyone() {
        return vec![partitions];
    }
    let mut out: Vec<u16> = target
        .rooms()
        .iter()
        .chain(target.connections())
        .map(|key| partition_of(key, partitions))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The partition a connection `id` in `rooms` receives an event to
/// `target` from, or `None` when `target` does not select it.
pub(crate) fn source_of<R: AsRef<str>>(target: &Target, id: &str, rooms: &[R], partitions: u16) -> Option<u16> {
    let member = |room: &str| rooms.iter().any(|r| r.as_ref() == room);
    let excepted = target.except().iter().any(|e| e == id || member(e));
    if excepted {
        return None;
    }
    if target.is_everyone() {
        return Some(partitions);
    }
    let by_room = target
        .rooms()
        .iter()
        .filter(|room| member(room))
        .map(|room| partition_of(room, partitions));
    let by_id = target
        .connections()
        .iter()
        .filter(|c| c.as_str() == id)
        .map(|c| partition_of(c, partitions));
    by_room.chain(by_id).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u16 = 64;

    #[test]
    fn everyone_is_its_own_partition_and_exceptions_hold() {
        let everyone = Target::all();
        assert_eq!(partitions_of(&everyone, P), [P]);
        assert_eq!(source_of::<&str>(&everyone, "c1", &[], P), Some(P));
        let but_muted = Target::new(Vec::<String>::new(), ["muted"]);
        assert_eq!(source_of(&but_muted, "c1", &["muted"], P), None);
        assert_eq!(source_of::<&str>(&but_muted, "muted", &[], P), None, "an id in except");
        assert_eq!(source_of(&but_muted, "c1", &["lobby"], P), Some(P));
    }

    #[test]
    fn a_member_of_several_target_rooms_receives_from_the_lowest_partition_once() {
        // Two rooms in different partitions.
        let (a, b) = ("lobby", "kitchen");
        let (pa, pb) = (partition_of(a, P), partition_of(b, P));
        assert_ne!(pa, pb, "pick two rooms of different partitions");
        let target = Target::new([a, b], Vec::<String>::new());
        let mut expected = vec![pa, pb];
        expected.sort_unstable();
        assert_eq!(partitions_of(&target, P), expected);
        assert_eq!(source_of(&target, "c1", &[a, b], P), Some(pa.min(pb)));
        assert_eq!(source_of(&target, "c1", &[b], P), Some(pb));
        assert_eq!(source_of(&target, "c1", &["elsewhere"], P), None);
    }

    #[test]
    fn an_id_target_reaches_that_connection_only_not_a_room_of_its_name() {
        let target = Target::connection("c1");
        assert_eq!(partitions_of(&target, P), [partition_of("c1", P)]);
        assert_eq!(source_of::<&str>(&target, "c1", &[], P), Some(partition_of("c1", P)));
        assert_eq!(source_of(&target, "c2", &["c1"], P), None);
    }
}
