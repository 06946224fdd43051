#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
//! placeholder
use tower_electric::testing::postgres::TestCluster;

#[tokio::test]
async fn smoke() {
    let cluster = TestCluster::start().unwrap();
    let client = cluster.connect().await.unwrap();
    let row = client.query_one("SELECT current_user::text, version()", &[]).await.unwrap();
    println!("{} {:?} {}", cluster.version(), cluster, row.get::<_, String>(1));
}
