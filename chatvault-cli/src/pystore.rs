//! `import --from chatvault-py dynamodb://TABLE?bucket=B`: the Python library's live
//! table and bucket, dumped into a temporary directory in the form the `chatvault-py`
//! importer reads (`items.json` as `aws dynamodb scan` prints it, each attachment under
//! its storage key), then imported from there. Memory holds one scan page and one
//! download buffer.

use std::path::Path;

use chatvault_core::Result;

/// Dumps the table (page by page) and the objects its items name into `dir`.
#[cfg(feature = "aws")]
pub(crate) async fn dump(
    table: &str,
    bucket: &str,
    region: Option<&str>,
    dir: &Path,
) -> Result<()> {
    use std::io::Write;

    use chatvault_aws::reexports::{aws_config, aws_sdk_dynamodb};
    use chatvault_core::Error;

    let mut loader = aws_config::from_env();
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region.to_owned()));
    }
    let sdk = loader.load().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let files = chatvault_aws::S3Files::builder(bucket)
        .sdk_config(&sdk)
        .build()
        .await?;
    let io = |e: std::io::Error| Error::backend("chatvault", e);
    let path = dir.join("items.json");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).map_err(io)?);
    out.write_all(b"{\"Items\": [").map_err(io)?;
    let mut first = true;
    let mut start = None;
    loop {
        let page = dynamo
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| {
                Error::backend(
                    "dynamodb",
                    aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
                )
            })?;
        for item in page.items() {
            let json = serde_json::Value::Object(
                item.iter().map(|(k, v)| (k.clone(), typed(v))).collect(),
            );
            if !first {
                out.write_all(b",").map_err(io)?;
            }
            first = false;
            serde_json::to_writer(&mut out, &json).map_err(|e| io(e.into()))?;
            for key in storage_keys(item) {
                download(&files, &key, dir).await?;
            }
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    out.write_all(b"]}").map_err(io)?;
    out.flush().map_err(io)
}

/// Without the `aws` feature: a clear refusal.
#[cfg(not(feature = "aws"))]
pub(crate) async fn dump(_: &str, _: &str, _: Option<&str>, _: &Path) -> Result<()> {
    Err(crate::error::not_built("aws"))
}

/// The storage keys an item's `files` (a JSON string) names.
#[cfg(feature = "aws")]
fn storage_keys(
    item: &std::collections::HashMap<
        String,
        chatvault_aws::reexports::aws_sdk_dynamodb::types::AttributeValue,
    >,
) -> Vec<String> {
    let Some(Ok(files)) = item.get("files").map(|f| f.as_s()) else {
        return Vec::new();
    };
    let records: Vec<serde_json::Value> = serde_json::from_str(files).unwrap_or_default();
    records
        .iter()
        .filter_map(|r| r.get("storage_key")?.as_str().map(str::to_owned))
        .collect()
}

/// Copies one object to `dir/key`; a key that is not a safe relative path, or an object
/// that is gone, is left out (the import reports it as an attachment without bytes).
#[cfg(feature = "aws")]
async fn download(files: &chatvault_aws::S3Files, key: &str, dir: &Path) -> Result<()> {
    use std::io::Write;

    use chatvault_core::{Error, FilesBackend, StorageKey};
    use futures_util::StreamExt;

    let Ok(storage_key) = StorageKey::parse(key) else {
        return Ok(());
    };
    let Some(mut stream) = files.download_stream(&storage_key).await? else {
        return Ok(());
    };
    let path = dir.join(storage_key.as_str());
    let io = |e: std::io::Error| Error::backend("chatvault", e);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let mut out = std::fs::File::create(&path).map_err(io)?;
    while let Some(chunk) = stream.next().await {
        out.write_all(&chunk.map_err(io)?).map_err(io)?;
    }
    Ok(())
}

/// An attribute in DynamoDB's typed JSON (`{"S": ".."}`, `{"N": ".."}`, ..).
#[cfg(feature = "aws")]
fn typed(
    v: &chatvault_aws::reexports::aws_sdk_dynamodb::types::AttributeValue,
) -> serde_json::Value {
    use base64::Engine;
    use chatvault_aws::reexports::aws_sdk_dynamodb::types::AttributeValue as A;
    use serde_json::{Value, json};

    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    match v {
        A::S(s) => json!({"S": s}),
        A::N(n) => json!({"N": n}),
        A::Bool(b) => json!({"BOOL": b}),
        A::Null(n) => json!({"NULL": n}),
        A::B(b) => json!({"B": b64(b.as_ref())}),
        A::Ss(s) => json!({"SS": s}),
        A::Ns(n) => json!({"NS": n}),
        A::Bs(bs) => json!({"BS": bs.iter().map(|b| b64(b.as_ref())).collect::<Vec<_>>()}),
        A::L(items) => json!({"L": items.iter().map(typed).collect::<Vec<_>>()}),
        A::M(m) => Value::Object(
            [(
                "M".to_owned(),
                Value::Object(m.iter().map(|(k, v)| (k.clone(), typed(v))).collect()),
            )]
            .into_iter()
            .collect(),
        ),
        _ => Value::Null,
    }
}
