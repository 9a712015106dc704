//! The patch types kubectl and clients send: JSON merge patch (RFC 7386),
//! JSON patch (RFC 6902) and strategic merge patch (lists of named objects
//! merged by name, `$patch: delete`, `$setElementOrder` directives ignored).

use super::store::ApiError;
use serde_json::Value;

pub fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            if let Some(t) = target.as_object_mut() {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn merge_key(items: &[Value]) -> Option<&'static str> {
    ["name", "mountPath", "containerPort", "port", "ip"]
        .into_iter()
        .find(|k| items.iter().all(|i| !i[*k].is_null()) && !items.is_empty())
}

pub fn strategic(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut v = patch.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("$patch");
        }
        *target = v;
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let Some(t) = target.as_object_mut() else {
        return;
    };
    for (k, v) in p {
        if k.starts_with("$setElementOrder/") || k.starts_with("$retainKeys") || k == "$patch" {
            continue;
        }
        match v {
            Value::Null => {
                t.remove(k);
            }
            Value::Array(items) if items.iter().all(Value::is_object) && !items.is_empty() => {
                let cur = t.entry(k.clone()).or_insert(Value::Array(vec![]));
                let Some(list) = cur.as_array_mut() else {
                    *cur = v.clone();
                    continue;
                };
                let Some(key) = merge_key(items) else {
                    *cur = v.clone();
                    continue;
                };
                for item in items {
                    let id = &item[key];
                    let pos = list.iter().position(|x| &x[key] == id);
                    let delete = item["$patch"].as_str() == Some("delete");
                    match (pos, delete) {
                        (Some(i), true) => {
                            list.remove(i);
                        }
                        (None, true) => {}
                        (Some(i), false) => strategic(&mut list[i], item),
                        (None, false) => {
                            let mut fresh = Value::Object(Default::default());
                            strategic(&mut fresh, item);
                            list.push(fresh);
                        }
                    }
                }
            }
            Value::Object(_) => strategic(t.entry(k.clone()).or_insert(Value::Null), v),
            other => {
                t.insert(k.clone(), other.clone());
            }
        }
    }
}

fn unescape(s: &str) -> String {
    s.replace("~1", "/").replace("~0", "~")
}

fn parent<'a>(doc: &'a mut Value, path: &str) -> Result<(&'a mut Value, String), ApiError> {
    let parts: Vec<String> = path.split('/').skip(1).map(unescape).collect();
    let Some((last, init)) = parts.split_last() else {
        return Err(ApiError::bad("json patch: empty path"));
    };
    let mut cur = doc;
    for p in init {
        cur = match cur {
            Value::Object(m) => m.get_mut(p),
            Value::Array(a) => p.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| {
            ApiError::new(
                422,
                "Invalid",
                format!("json patch: path {path} does not exist"),
            )
        })?;
    }
    Ok((cur, last.clone()))
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, ApiError> {
    let (p, last) = parent(doc, path)?;
    let missing = || {
        ApiError::new(
            422,
            "Invalid",
            format!("json patch: cannot remove {path}: it does not exist"),
        )
    };
    match p {
        Value::Object(m) => m.remove(&last).ok_or_else(missing),
        Value::Array(a) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => Ok(a.remove(i)),
            _ => Err(missing()),
        },
        _ => Err(missing()),
    }
}

fn add(doc: &mut Value, path: &str, v: Value, replace: bool) -> Result<(), ApiError> {
    if path.is_empty() {
        *doc = v;
        return Ok(());
    }
    let (p, last) = parent(doc, path)?;
    match p {
        Value::Object(m) => {
            if replace && !m.contains_key(&last) {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    format!("json patch: cannot replace {path}: it does not exist"),
                ));
            }
            m.insert(last, v);
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(v);
            } else {
                let i: usize = last
                    .parse()
                    .map_err(|_| ApiError::bad(format!("json patch: bad index in {path}")))?;
                if replace && i < a.len() {
                    a[i] = v;
                } else if i <= a.len() {
                    a.insert(i, v);
                } else {
                    return Err(ApiError::new(
                        422,
                        "Invalid",
                        format!("json patch: index out of range in {path}"),
                    ));
                }
            }
        }
        _ => {
            return Err(ApiError::new(
                422,
                "Invalid",
                format!("json patch: {path} is not in an object or array"),
            ))
        }
    }
    Ok(())
}

pub fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), ApiError> {
    let Some(ops) = ops.as_array() else {
        return Err(ApiError::bad(
            "json patch: the body must be an array of operations",
        ));
    };
    for op in ops {
        let path = op["path"].as_str().unwrap_or("");
        match op["op"].as_str().unwrap_or("") {
            "add" => add(doc, path, op["value"].clone(), false)?,
            "replace" => add(doc, path, op["value"].clone(), true)?,
            "remove" => {
                remove(doc, path)?;
            }
            "test" => {
                let here = doc.pointer(path).cloned().unwrap_or(Value::Null);
                if here != op["value"] {
                    return Err(ApiError::new(
                        422,
                        "Invalid",
                        format!("json patch: test failed at {path}"),
                    ));
                }
            }
            "move" | "copy" => {
                let from = op["from"].as_str().unwrap_or("");
                let v = if op["op"] == "move" {
                    remove(doc, from)?
                } else {
                    doc.pointer(from).cloned().ok_or_else(|| {
                        ApiError::bad(format!("json patch: {from} does not exist"))
                    })?
                };
                add(doc, path, v, false)?;
            }
            other => return Err(ApiError::bad(format!("json patch: unknown op {other:?}"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merges_lists_by_name_and_deletes() {
        let mut d = json!({"containers": [{"name": "a", "image": "x:1", "env": [{"name": "K", "value": "1"}, {"name": "GONE", "value": "z"}]}, {"name": "b", "image": "y"}]});
        strategic(
            &mut d,
            &json!({"$setElementOrder/containers": [{"name": "a"}], "containers": [{"name": "a", "image": "x:2", "env": [{"name": "NEW", "value": "2"}, {"name": "GONE", "$patch": "delete"}]}]}),
        );
        assert_eq!(d["containers"][0]["image"], "x:2");
        assert_eq!(d["containers"][1]["image"], "y");
        assert_eq!(
            d["containers"][0]["env"],
            json!([{"name": "K", "value": "1"}, {"name": "NEW", "value": "2"}])
        );
    }

    #[test]
    fn merge_patch_null_removes_and_json_patch_tests() {
        let mut d = json!({"spec": {"a": 1, "b": 2}, "metadata": {"resourceVersion": "5"}});
        merge(&mut d, &json!({"spec": {"a": null, "c": 3}}));
        assert_eq!(d["spec"], json!({"b": 2, "c": 3}));
        let stale = json!([{"op": "test", "path": "/metadata/resourceVersion", "value": "4"}, {"op": "replace", "path": "/spec/b", "value": 9}]);
        assert!(json_patch(&mut d, &stale).is_err());
        let fresh = json!([{"op": "test", "path": "/metadata/resourceVersion", "value": "5"}, {"op": "replace", "path": "/spec/b", "value": 9}]);
        json_patch(&mut d, &fresh).unwrap();
        assert_eq!(d["spec"]["b"], 9);
    }
}
