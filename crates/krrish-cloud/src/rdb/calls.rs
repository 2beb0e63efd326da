//! The RDB calls as they cross the wire, answered.

use super::Rdbs;
use crate::name::Name;
use crate::request::{CloudError, CloudReply, CloudRequest};
use krrish_core::{HostId, VmId};

/// Answers an RDB call (`request.family()` is `Family::Rdb`). A refused
/// call changes nothing.
pub(crate) fn apply(
    rdbs: &mut Rdbs,
    request: CloudRequest,
    now_ms: u64,
    vm_exists: &dyn Fn(&VmId) -> bool,
    where_is: &dyn Fn(&VmId) -> Option<HostId>,
) -> Result<CloudReply, CloudError> {
    use CloudRequest as R;
    let reply = |message: String, data: serde_json::Value| Ok(CloudReply { message, data });
    match request {
        R::CreateRdb {
            name,
            primary,
            standby,
        } => {
            let name = Name::parse("name", &name)?;
            let primary = vm_name_in("primary", &primary)?;
            let standby = vm_name_in("standby", &standby)?;
            let r = rdbs.create(name, primary, standby, now_ms, vm_exists, where_is)?;
            let (p, s) = (&r.set.members[0], &r.set.members[1]);
            let on = |m: &super::Member| m.host.as_ref().map(|h| h.to_string()).unwrap_or_default();
            reply(
                format!(
                    "rdb {} created: primary {} on {}, standby {} on {}, epoch 1",
                    r.name,
                    p.vm,
                    on(p),
                    s.vm,
                    on(s)
                ),
                r.to_json(),
            )
        }
        R::DeleteRdb { name } => {
            let name = Name::parse("name", &name)?;
            let r = rdbs.delete(&name)?;
            reply(
                format!("rdb {name} deleted; its VMs stay"),
                serde_json::json!({ "name": r.name }),
            )
        }
        R::DescribeRdbs => {
            let all: Vec<serde_json::Value> = rdbs.rdbs.values().map(|r| r.to_json()).collect();
            reply(format!("{} rdbs", all.len()), serde_json::Value::Array(all))
        }
        R::SwitchoverRdb { name } => {
            let name = Name::parse("name", &name)?;
            let r = rdbs.switchover(&name)?;
            reply(
                format!(
                    "rdb {name} switched over: primary {} at epoch {}",
                    r.set.primary.as_ref().map(|v| v.as_str()).unwrap_or("none"),
                    r.set.epoch
                ),
                r.to_json(),
            )
        }
        other => unreachable!("not an RDB call: {other}"),
    }
}

/// A VM named in field `field`.
fn vm_name_in(field: &'static str, s: &str) -> Result<VmId, CloudError> {
    Ok(VmId::new(Name::parse(field, s)?.as_str()))
}
